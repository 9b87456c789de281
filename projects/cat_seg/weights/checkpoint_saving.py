"""Checkpoints the runner saves are complete under their final name or absent, so a run killed at
any moment leaves only whole checkpoints for ``--resume``.

mmengine writes a checkpoint's bytes with its file backend's ``put`` (``open(path, 'wb')``, then
write) and ``last_checkpoint`` with ``open(path, 'w')`` inside ``CheckpointHook``: a kill in
between leaves a torn file under the final name. ``CATSegCheckpointHook`` routes both writes
through ``files.atomic_write``.
"""
import unittest.mock
from pathlib import Path
from typing import Optional, Union

from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.hooks import checkpoint_hook as mmengine_checkpoint_hook
from mmseg.registry import HOOKS

from .files import atomic_write

ATOMIC_BACKEND = 'catseg_atomic_local'


@register_backend(ATOMIC_BACKEND)
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose writes are atomic (``atomic_write``)."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        Path(filepath).parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(filepath, 'wb') as file:
            file.write(obj)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        Path(filepath).parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(filepath, 'wb') as file:
            file.write(obj.encode(encoding))


@HOOKS.register_module()
class CATSegCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` (same arguments) that never leaves a torn checkpoint or
    ``last_checkpoint`` under its final name: without ``backend_args`` (or the deprecated
    ``file_client_args``) and with a local ``out_dir``, checkpoints are written by
    ``AtomicLocalBackend``; ``last_checkpoint`` is always written atomically.

    Examples:
        >>> default_hooks = dict(checkpoint=dict(type='CATSegCheckpointHook', by_epoch=False,
        ...                                      interval=5000))
    """

    def __init__(self, *args, out_dir: Optional[str] = None,
                 file_client_args: Optional[dict] = None, backend_args: Optional[dict] = None,
                 **kwargs):
        if file_client_args is None and backend_args is None and '://' not in str(out_dir):
            backend_args = dict(backend=ATOMIC_BACKEND)
        super().__init__(*args, out_dir=out_dir, file_client_args=file_client_args,
                         backend_args=backend_args, **kwargs)

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        # The base method's only open() is its write of last_checkpoint: made atomic for the call.
        with unittest.mock.patch.object(mmengine_checkpoint_hook, 'open', atomic_write,
                                        create=True):
            super()._save_checkpoint_with_step(runner, step, meta)
