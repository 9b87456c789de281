"""Text embeddings kept on disk between runs, so a repeated vocabulary skips the text encoder."""
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Optional, Sequence, Set, Union

import torch
from mmengine.logging import print_log
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
    """Embeddings (T, P, C) saved by :meth:`TextEmbeddingCache.prime` (any object, unchecked)."""
    return torch.load(path, map_location=device, weights_only=True)


def save_atomically(embeds: Tensor, path: Path) -> None:
    """Write ``embeds`` to ``path``: complete under that name or not there at all.

    Each writer has its own temporary file in the same directory (so concurrent writers of one
    vocabulary never write into the same file), flushed to disk and renamed over ``path``.
    """
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.stem}.', suffix='.tmp')
    try:
        with os.fdopen(handle, 'wb') as file:
            torch.save(embeds, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class TextEmbeddingCache:
    """A directory of text embeddings for one text encoder, one file per vocabulary.

    The key is the encoder's weights (``weights_fingerprint``, taken once here), its templates,
    its synonym rule and the class names. A vocabulary's file is read (or written) once per
    instance: afterwards the encoder's in-memory cache holds the embeddings. A file is used only
    if it holds what the encoder would compute in its place: a finite tensor of shape (T, P, C)
    and the encoder's dtype; any other file (truncated, empty, foreign) is reported in one
    warning line, recomputed and rewritten.

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
        embeds = self._read(path, vocabulary, device) if path.exists() else None
        if embeds is not None:
            self.encoder.remember(vocabulary, embeds)
        else:
            embeds = self.encoder(vocabulary)
            self.directory.mkdir(parents=True, exist_ok=True)
            save_atomically(embeds.cpu(), path)
        self._primed.add(path)

    def _read(self, path: Path, vocabulary: Sequence,
              device: Union[str, torch.device]) -> Optional[Tensor]:
        """The file's embeddings (T, P, C) if they are what the encoder would compute, else None
        (after a warning naming the file and what is wrong with it)."""
        expected = (len(vocabulary), self.encoder.num_prompts,
                    self.encoder.text_projection.shape[1])
        dtype = self.encoder.text_projection.dtype
        try:
            embeds = load_embeddings(path, device)
        except Exception as error:  # the unpickler and the zip reader raise many types
            problem = f'unreadable ({type(error).__name__}: {(str(error).splitlines() or [""])[0]})'
        else:
            if not isinstance(embeds, Tensor):
                problem = f'holds a {type(embeds).__name__}, not a tensor'
            elif tuple(embeds.shape) != expected or embeds.dtype != dtype:
                problem = (f'holds a {embeds.dtype} tensor of shape {tuple(embeds.shape)}; '
                           f'this vocabulary and encoder give {dtype} {expected} (T, P, C)')
            elif not torch.isfinite(embeds).all():
                problem = 'holds values that are not finite'
            else:
                return embeds
        print_log(f'text embedding cache: ignoring {path}: {problem}; recomputing it',
                  logger='current', level=logging.WARNING)
        return None
