"""Released weights: which checkpoint URL belongs to a config, downloading a URL once, and
reading a checkpoint given as a path or a URL.

A config's released checkpoint is the ``Weights`` field of its entry in the ``metafile.yaml``
beside it, OpenMMLab's model-index format (as mmseg's ``configs/<algorithm>/metafile.yaml``, which
``mim`` and mmengine's inferencers read), so configs derived from it never inherit a checkpoint
they cannot load. ``$CATSEG_WEIGHTS_URL`` overrides it.
"""
import http.client
import os
import tempfile
import threading
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO, Dict, Optional

import torch
from mmengine.fileio import load
from torch import Tensor
from tqdm import tqdm

from .files import load_weights_file

WEIGHTS_URL_ENV = 'CATSEG_WEIGHTS_URL'
# Seconds a download may wait for the server: to connect (name lookup included) and per read.
DOWNLOAD_TIMEOUT = 15.0
LOCAL_FILE_HINT = ('or download it yourself and pass the file with --checkpoint PATH '
                   '(Python: checkpoint=PATH)')


def released_weights_url(config_file: Optional[str]) -> str:
    """The checkpoint URL of a config file: ``$CATSEG_WEIGHTS_URL`` when set, else the
    ``Weights`` of the config's entry in the ``metafile.yaml`` of its directory.

    Raises:
        ValueError: The config has no released weights (or was not read from a file).
    """
    override = os.environ.get(WEIGHTS_URL_ENV)
    if override:
        return override
    checkpoint_hint = ('pass a checkpoint with --checkpoint PATH (Python: checkpoint=PATH), or a '
                       f'URL in ${WEIGHTS_URL_ENV}')
    if config_file is None:
        raise ValueError('a config not read from a file has no released weights: '
                         + checkpoint_hint)
    path = Path(config_file).resolve()
    metafile = path.parent / 'metafile.yaml'
    models = load(str(metafile)).get('Models', []) if metafile.is_file() else []
    for model in models:
        if Path(model.get('Config', '')).name == path.name and model.get('Weights'):
            return model['Weights']
    raise ValueError(f'config {config_file!r} has no released weights (no entry with Weights in '
                     f'{metafile}): {checkpoint_hint}')


def open_url(url: str, timeout: float = DOWNLOAD_TIMEOUT) -> IO[bytes]:
    """``urlopen`` with a deadline on the whole connection: the name lookup ignores socket
    timeouts, and an unanswered resolver would otherwise block for minutes."""
    outcome = {}

    def connect():
        try:
            outcome['response'] = urllib.request.urlopen(url, timeout=timeout)
        except Exception as error:   # handed to the caller's thread
            outcome['error'] = error

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f'no answer within {timeout:g} s')
    if 'error' in outcome:
        raise outcome['error']
    return outcome['response']


def download_checkpoint(url: str, target: Path, timeout: float = DOWNLOAD_TIMEOUT) -> None:
    """Download ``url`` to ``target`` with a progress bar: all of it or nothing.

    The bytes go to a temporary file beside ``target``, renamed once the size the server announced
    has arrived; on any failure (or Ctrl-C) it is deleted.

    Raises:
        ValueError: Naming the URL, the reason and how to pass a local file instead.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f'{target.name}.',
                                          suffix='.partial', delete=False)
    try:
        with partial, open_url(url, timeout) as response:
            expected = int(response.headers.get('Content-Length') or 0) or None
            # A bar on terminals only (disable=None): elsewhere its redraws fill the log.
            with tqdm(total=expected, unit='B', unit_scale=True, unit_divisor=1024,
                      desc=target.name, disable=None) as progress:
                while chunk := response.read(1 << 20):
                    partial.write(chunk)
                    progress.update(len(chunk))
            received = partial.tell()
        if expected is not None and received != expected:
            raise ValueError(f'the download stopped after {received} of {expected} bytes')
        os.replace(partial.name, target)
    except (OSError, ValueError, http.client.HTTPException) as error:  # URLError is an OSError
        raise ValueError(f'could not download the checkpoint {url!r} ({type(error).__name__}: '
                         f'{error}); check the network and run again, {LOCAL_FILE_HINT}') \
            from error
    finally:
        Path(partial.name).unlink(missing_ok=True)


def fetch_checkpoint(path_or_url: str) -> str:
    """A local path for a checkpoint given as a path or a URL (http(s)://, file://).

    URLs are downloaded once into torch hub's ``checkpoints`` directory (``$TORCH_HOME``), where
    mmengine keeps its downloads too, and reused afterwards (``download_checkpoint``:
    with a timeout, all of the file or nothing).
    """
    if '://' not in path_or_url:
        return path_or_url
    name = Path(urllib.parse.urlparse(path_or_url).path).name
    if not name:
        raise ValueError(f'checkpoint URL {path_or_url!r} does not end with a file name')
    target = Path(torch.hub.get_dir()) / 'checkpoints' / name
    if not target.is_file():
        download_checkpoint(path_or_url, target)
    return str(target)


def load_checkpoint_file(path_or_url: str) -> Dict[str, Tensor]:
    """``load_weights_file`` of a path or a URL (``fetch_checkpoint``).

    Raises:
        ValueError: A downloaded file that does not load; it is deleted, so that the next run
            downloads it again.
    """
    path = fetch_checkpoint(path_or_url)
    if path == path_or_url:
        return load_weights_file(path)
    try:
        return load_weights_file(path)
    except ValueError as error:
        Path(path).unlink(missing_ok=True)
        raise ValueError(f'the checkpoint downloaded from {path_or_url!r} does not load and was '
                         f'deleted ({path}), so the next run downloads it again: {error}') \
            from error
