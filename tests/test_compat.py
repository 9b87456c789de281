"""cat_seg.compat: each shim acts only when its problem is present, and fixes it."""
import os
import pickle
import subprocess
import sys

import pytest
import torch

from cat_seg import compat
from cat_seg.weights.files import load_weights_file


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (nothing of this test process imported)."""
    return subprocess.run([sys.executable, '-c', code, *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.slow
def test_mmseg_models_import_in_a_fresh_interpreter_under_mmcv_lite():
    assert not compat.mmcv_has_compiled_ops()  # this environment runs mmcv-lite
    result = run_python('import cat_seg, mmseg.models, mmseg.utils; '
                        'from mmseg.models.decode_heads import SideAdapterCLIPHead; print("ok")')
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith('ok')


@pytest.mark.slow
def test_importing_cat_seg_alone_registers_its_modules_in_mmseg_registries():
    """What ``custom_imports=dict(imports=['cat_seg'])`` relies on: no register_all_modules."""
    result = run_python(
        'import cat_seg; from mmseg import registry as r; '
        'print(*(f"{name}:{name in getattr(r, reg).module_dict}" for reg, names in ('
        '("MODELS", ["CATSeg", "CATSegHead", "CATSegCLIPImageEncoder", "CATSegCLIPTextEncoder", '
        '"CATSegCLIPGuidance", "CATSegBackboneGuidance", "CATSegBCELoss"]), '
        '("DATASETS", ["PascalVOC20Dataset", "PascalVOC20bDataset"]), '
        '("TRANSFORMS", ["LoadCATSegAnnotations"]), ("METRICS", ["CATSegIoUMetric"]), '
        '("HOOKS", ["CATSegVocabularyHook"])) for name in names))')
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [
        f'{name}:True' for name in (
            'CATSeg', 'CATSegHead', 'CATSegCLIPImageEncoder', 'CATSegCLIPTextEncoder',
            'CATSegCLIPGuidance', 'CATSegBackboneGuidance', 'CATSegBCELoss',
            'PascalVOC20Dataset', 'PascalVOC20bDataset', 'LoadCATSegAnnotations',
            'CATSegIoUMetric', 'CATSegVocabularyHook')]


@pytest.mark.slow
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


def test_distributed_setup_is_left_alone_when_cuda_exists(monkeypatch):
    from mmengine.dist import utils as dist_utils
    before = dist_utils._init_dist_pytorch
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert compat.allow_distributed_runs_without_cuda() is False
    assert dist_utils._init_dist_pytorch is before


def test_cpu_distributed_setup_refuses_a_cuda_only_init_backend():
    with pytest.raises(ValueError, match="init_backend='deepspeed' needs CUDA"):
        compat.init_dist_pytorch_without_cuda('gloo', init_backend='deepspeed')


class RunsCode:
    def __reduce__(self):
        return (os.system, ('touch pwned',))


def test_a_pickle_that_would_run_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / 'clip_weights.pth'
    with open(path, 'wb') as file:
        pickle.dump({'visual.proj': RunsCode()}, file, protocol=2)  # torch.save's protocol
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


def test_a_runner_message_hub_round_trips_through_weights_only_loading(tmp_path):
    """The part of a runner checkpoint plain weights lack: logged scalars as numpy values."""
    import numpy as np
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('compat_round_trip')
    for loss in (np.float32(0.5), np.float64(1.5), 2.5):
        hub.update_scalar('train/loss', loss)
    hub.update_info('iter', 3)
    path = tmp_path / 'iter_3.pth'
    torch.save({'meta': {'seed': np.int64(7), 'iter': 3}, 'message_hub': hub.state_dict()}, path)
    loaded = torch.load(path, weights_only=True)
    restored = MessageHub.get_instance('compat_round_trip_restored')
    restored.load_state_dict(loaded['message_hub'])
    assert loaded['meta'] == {'seed': 7, 'iter': 3}
    assert restored.get_scalar('train/loss').mean() == pytest.approx(1.5)
    assert restored.get_scalar('train/loss').current() == 2.5
    assert restored.get_info('iter') == 3


@pytest.mark.slow
def test_without_the_shim_a_message_hub_is_refused_by_weights_only_loading(tmp_path):
    """Guards the test above: the failure the shim fixes is real here."""
    result = run_python(
        'import sys, numpy as np, torch; from mmengine.logging import MessageHub; '
        'hub = MessageHub.get_instance("probe"); hub.update_scalar("loss", np.float32(0.5)); '
        'torch.save(hub.state_dict(), sys.argv[1]); torch.load(sys.argv[1], weights_only=True)',
        str(tmp_path / 'hub.pth'))
    assert result.returncode != 0 and 'Weights only load failed' in result.stderr


@pytest.mark.slow
def test_only_the_dormant_stack_notices_are_ignored():
    """Each listed notice is silent after ``import cat_seg``; the same text in another category
    and any other message still show."""
    notices = [f'warnings.warn({start!r} + " (as the stack words it)", {category.__name__})'
               for start, category in compat.DORMANT_STACK_NOTICES]
    result = run_python('import warnings, cat_seg; ' + '; '.join(notices) + '; '
                        'warnings.warn("pkg_resources is deprecated as an API", RuntimeWarning); '
                        'warnings.warn("another notice", UserWarning)')
    assert result.returncode == 0, result.stderr[-2000:]
    shown = [line for line in result.stderr.splitlines() if 'Warning: ' in line]
    assert [line.split(': ', 1)[1] for line in shown] == [
        'RuntimeWarning: pkg_resources is deprecated as an API', 'UserWarning: another notice']
