"""Files written whole or not at all (cat_seg.weights.files.atomic_write) and the checkpoint hook
that uses it; the kill during a real training run is in tests/test_tools/test_train_test.py."""
import io

import pytest
import torch
from mmengine.fileio import get_file_backend
from mmseg.registry import HOOKS

from cat_seg.weights.checkpoint_saving import ATOMIC_BACKEND, AtomicLocalBackend
from cat_seg.weights.files import atomic_write


def test_atomic_write_replaces_the_file_only_when_complete(tmp_path):
    path = tmp_path / 'iter_2.pth'
    path.write_bytes(b'old')
    with atomic_write(path) as file:
        torch.save({'a': torch.arange(3)}, file)
        assert path.read_bytes() == b'old'   # not visible before the block ends
    assert torch.equal(torch.load(path, weights_only=True)['a'], torch.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['iter_2.pth']


@pytest.mark.parametrize('existing', [b'old', None])
def test_atomic_write_interrupted_keeps_the_old_file_or_none(tmp_path, existing):
    """A save that raises after writing half of the checkpoint."""
    path = tmp_path / 'iter_4.pth'
    if existing is not None:
        path.write_bytes(existing)
    buffer = io.BytesIO()
    torch.save({'a': torch.zeros(1000)}, buffer)
    with pytest.raises(RuntimeError, match='stopped half-way'):
        with atomic_write(path) as file:
            file.write(buffer.getvalue()[:buffer.tell() // 2])
            file.flush()
            raise RuntimeError('stopped half-way')
    assert (path.read_bytes() if path.exists() else None) == existing
    assert [p.name for p in tmp_path.iterdir()] == ([path.name] if existing else [])


def test_two_writers_of_one_file_never_share_a_temporary_file(tmp_path):
    path = tmp_path / 'last_checkpoint'
    with atomic_write(path, 'w') as first, atomic_write(path, 'w') as second:
        assert first.name != second.name
        first.write('a')
        second.write('b')
    assert path.read_text() == 'a'   # the last rename wins, whole


def test_atomic_backend_writes_bytes_and_text_whole(tmp_path):
    backend = get_file_backend(str(tmp_path), backend_args=dict(backend=ATOMIC_BACKEND))
    assert isinstance(backend, AtomicLocalBackend)
    backend.put(b'\x00\x01', tmp_path / 'sub' / 'x.pth')
    backend.put_text('é', tmp_path / 'y.txt')
    assert (tmp_path / 'sub' / 'x.pth').read_bytes() == b'\x00\x01'
    assert (tmp_path / 'y.txt').read_text(encoding='utf-8') == 'é'


@pytest.mark.parametrize('kwargs, backend_args', [
    ({}, dict(backend=ATOMIC_BACKEND)),
    (dict(out_dir='/data/ckpts'), dict(backend=ATOMIC_BACKEND)),
    (dict(out_dir='s3://bucket/ckpts'), None),
    (dict(backend_args=dict(backend='local')), dict(backend='local')),
])
def test_checkpoint_hook_saves_local_checkpoints_atomically(kwargs, backend_args):
    hook = HOOKS.build(dict(type='CATSegCheckpointHook', interval=2, by_epoch=False, **kwargs))
    assert hook.backend_args == backend_args
