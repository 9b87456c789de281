"""Text embeddings kept on disk between runs, so a repeated vocabulary skips the text encoder."""
import hashlib
import json
from pathlib import Path
from typing import Sequence, Set, Union

import torch
from torch import Tensor, nn

DEFAULT_TEXT_CACHE = Path.home() / '.cache' / 'cat_seg' / 'text_embeddings'


def weights_fingerprint(module: nn.Module) -> str:
    """SHA-256 of a module's state (names, shapes and values)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(f'{name}{tuple(tensor.shape)}'.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def load_embeddings(path: Path, device: Union[str, torch.device]) -> Tensor:
    """Embeddings (T, P, C) saved by :meth:`TextEmbeddingCache.prime`."""
    return torch.load(path, map_location=device, weights_only=True)


class TextEmbeddingCache:
    """A directory of text embeddings for one text encoder, one file per vocabulary.

    The key is the encoder's weights (``weights_fingerprint``, taken once here), its templates,
    its synonym rule and the class names. A vocabulary's file is read (or written) once per
    instance: afterwards the encoder's in-memory cache holds the embeddings.

    Args:
        directory (str | Path): Where the files are kept.
        encoder (nn.Module): A ``CATSegCLIPTextEncoder``.
    """

    def __init__(self, directory: Union[str, Path], encoder: nn.Module):
        self.directory = Path(directory)
        self.encoder = encoder
        self._fingerprint = weights_fingerprint(encoder)
        self._primed: Set[Path] = set()

    def file(self, vocabulary: Sequence) -> Path:
        """Where the embeddings of ``vocabulary`` are kept for these text weights."""
        key = json.dumps([self._fingerprint, list(self.encoder.templates),
                          self.encoder.synonym_rule,
                          [[n] if isinstance(n, str) else list(n) for n in vocabulary]])
        return self.directory / f'{hashlib.sha256(key.encode()).hexdigest()}.pt'

    def prime(self, vocabulary: Sequence, device: Union[str, torch.device]) -> None:
        """Give the encoder the vocabulary's embeddings from disk, or compute and store them."""
        path = self.file(vocabulary)
        if path in self._primed:
            return
        if path.is_file():
            self.encoder.remember(vocabulary, load_embeddings(path, device))
        else:
            embeds = self.encoder(vocabulary)
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix('.tmp')
            torch.save(embeds.cpu(), temporary)
            temporary.replace(path)   # atomic: a concurrent reader never sees half a file
        self._primed.add(path)
