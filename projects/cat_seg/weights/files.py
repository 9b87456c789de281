"""Weight files, read safely and written whole.

Third-party files are data, never code: every load is ``torch.load(weights_only=True)`` (or
safetensors), so a pickle that would run code is refused, with one message (``refused_pickle``)
wherever it happens. A file we write is complete under its final name or absent
(``atomic_write``).
"""
import contextlib
import os
import secrets
from pathlib import Path
from typing import IO, Dict, Iterator, Union

import torch
from torch import Tensor


def refused_pickle(name: str, error: Exception) -> ValueError:
    """The error for a file that ``torch.load(weights_only=True)`` does not accept.

    Args:
        name (str): How the file is named to the user (a path, or a URL and its download path).
        error (Exception): What the unpickler raised.
    """
    return ValueError(f'{name} is not a plain weights file and is refused: it may contain code '
                      f'(weights_only=True loading failed: {error})')


def load_weights_file(path: str) -> Dict[str, Tensor]:
    """A state dict from ``.pth``/``.pt``/``.bin`` (``weights_only=True``) or ``.safetensors``.

    Unwraps ``{'state_dict': ...}`` and ``{'model': ...}`` containers.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: The file is refused (``refused_pickle``) or holds no dict.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f'weights file {str(file)!r} does not exist')
    if file.suffix == '.safetensors':
        from safetensors.torch import load_file
        return load_file(str(file))
    try:
        data = torch.load(file, map_location='cpu', weights_only=True)
    except Exception as error:  # the unpickler raises many types; all mean "not plain weights"
        raise refused_pickle(repr(str(file)), error) from error
    for container in ('state_dict', 'model'):
        if isinstance(data, dict) and isinstance(data.get(container), dict):
            data = data[container]
    if not isinstance(data, dict):
        raise ValueError(f'{str(file)!r} holds a {type(data).__name__}, not a state dict')
    return data


@contextlib.contextmanager
def atomic_write(path: Union[str, Path], mode: str = 'wb') -> Iterator[IO]:
    """Open ``path`` for writing so that it only ever appears complete.

    The data go to a temporary file beside ``path`` (a name unique to this writer, so concurrent
    writers never share one), are flushed and fsynced, and the file is renamed over ``path``; the
    directory is fsynced so the rename survives a power cut. If the block raises (or the process
    is killed), ``path`` keeps its previous content or stays absent.

    Examples:
        >>> with atomic_write('work_dirs/x/iter_4.pth') as file:
        ...     torch.save(checkpoint, file)
    """
    path = Path(path)
    # Hidden and unique per writer; created with the usual permissions (mkstemp would make 0600).
    temporary = path.with_name(f'.{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp')
    try:
        with open(temporary, mode.replace('w', 'x')) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
