"""cat_seg.compat: each shim acts only when its problem is present, and fixes it."""
import os
import pickle
import subprocess
import sys

import pytest
import torch

from cat_seg import compat
from cat_seg.checkpoint import load_weights_file


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120)


def test_mmseg_models_import_in_a_fresh_interpreter_under_mmcv_lite():
    assert not compat.mmcv_has_compiled_ops()  # this environment runs mmcv-lite
    result = run_python('import cat_seg, mmseg.models, mmseg.utils; '
                        'from mmseg.models.decode_heads import SideAdapterCLIPHead; print("ok")')
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith('ok')


def test_without_the_shim_mmseg_models_does_not_import():
    """Guards the test above: the failure the shim fixes is real here."""
    result = run_python('import mmseg.models')
    assert result.returncode != 0 and "No module named 'mmcv._ext'" in result.stderr


def test_a_compiled_op_fails_only_when_called_and_says_why():
    from mmcv.ops import point_sample, sigmoid_focal_loss
    grid = torch.zeros(1, 1, 1, 2)
    assert point_sample(torch.ones(1, 1, 4, 4), grid).shape == (1, 1, 1, 1)
    with pytest.raises(RuntimeError, match='sigmoid_focal_loss needs the compiled mmcv ops'):
        sigmoid_focal_loss(torch.zeros(1))


def test_nothing_is_patched_when_compiled_ops_exist(monkeypatch):
    monkeypatch.setattr(compat, 'mmcv_has_compiled_ops', lambda: True)
    monkeypatch.delitem(sys.modules, 'mmcv.ops')
    assert compat.install_lite_mmcv_ops() is False
    assert 'mmcv.ops' not in sys.modules


class RunsCode:
    def __reduce__(self):
        return (os.system, ('touch pwned',))


def test_a_pickle_that_would_run_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / 'clip_weights.pth'
    with open(path, 'wb') as file:
        pickle.dump({'visual.proj': RunsCode()}, file)
    with pytest.raises(ValueError, match="clip_weights.pth' is not a plain weights file and is "
                                         'refused'):
        load_weights_file(str(path))
    assert not (tmp_path / 'pwned').exists()


def test_runner_checkpoint_types_are_allow_listed_but_getattr_is_not():
    from mmengine.logging.history_buffer import HistoryBuffer
    allowed = compat.runner_checkpoint_safe_globals()
    assert HistoryBuffer in allowed and getattr not in allowed
    buffer = HistoryBuffer()
    buffer.update(1.5)
    assert 'statistics_methods' not in buffer.__getstate__()
