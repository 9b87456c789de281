"""Compatibility shims for the dormant mmsegmentation 1.2.2 stack, all in one place.

Imported first by ``cat_seg/__init__.py``. Each shim acts only when its problem is present.

1. ``mmcv.ops`` without compiled ops (mmcv-lite). ``import mmcv.ops`` loads every compiled
   extension and fails under mmcv-lite, yet mmseg 1.2.2 imports it unguarded in four places
   (``utils/mask_classification.py``, ``decode_heads/san_head.py``, ``models/utils/
   point_sample.py``, ``losses/focal_loss.py``), which breaks ``import mmseg.models``. CAT-Seg
   needs none of mmcv's compiled ops, so when they are absent ``mmcv.ops`` is registered as a
   small module holding the pure-PyTorch ``point_sample`` (loaded from mmcv's own file) and,
   for every other name, a stand-in that raises a clear error if it is ever called. With a full
   mmcv installed nothing is patched.
2. Runner checkpoints under ``torch.load(weights_only=True)`` (default since torch 2.6). mmengine
   0.10.7 resumes/tests with plain ``torch.load``; its checkpoints hold the message hub, i.e.
   ``HistoryBuffer`` objects with numpy arrays, and each buffer pickles its statistics functions,
   which can only be unpickled through ``getattr`` -- a global that must never be allowed (it
   reaches any attribute, hence code execution). So buffers no longer pickle the built-in
   statistics (they are class defaults, restored on load anyway), and the few harmless types left
   are allow-listed. Third-party weights stay ``weights_only=True`` and a pickle that runs code is
   still refused; ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` is not touched.

3. Distributed runs without CUDA. mmengine 0.10.7 calls ``torch.cuda.set_device`` before
   ``init_process_group`` for the pytorch and slurm launchers even when the backend is gloo,
   which fails on a machine without GPUs; without CUDA the process group is initialised
   directly (for slurm after mmengine's environment set-up from srun's variables).

4. Quiet start. The dormant stack prints the same notices on every start, none of them about
   CAT-Seg (``DORMANT_STACK_NOTICES``); each is ignored by the start of its message and its
   category, so every other warning still shows. The tools import ``cat_seg`` before they read
   a config, so the filter is in place before mmengine first imports ``pkg_resources``.

5. The runner's ``compile`` setting. mmengine 0.10.7 compiles the whole ``train_step``, which
   includes ``OptimWrapper.update_params`` (backward and the optimiser step); dynamo (torch
   2.14) fails inside ``torch.optim`` there ("'UserDefinedDictVariable' object has no attribute
   'items'" in ``Adam.step``). The update runs eagerly (``torch.compiler.disable``); the
   forward pass and loss are still compiled.

(``pkg_resources`` itself, which mmengine needs to resolve ``mmseg::`` configs, cannot be
provided here: mmseg's own tools read a config before its ``custom_imports`` import ``cat_seg``.
setup.cfg pins ``setuptools<82`` instead.)
"""
import importlib.util
import inspect
import os
import re
import subprocess
import sys
import types
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch


# (start of the message, category) of each notice; why each is noise is on its line.
DORMANT_STACK_NOTICES = (
    # mmcv-lite has no deformable attention, which CAT-Seg never uses.
    ('Fail to import ``MultiScaleDeformableAttention``', UserWarning),
    # mmengine resolves mmseg:: configs with pkg_resources, kept by the setuptools<82 pin.
    ('pkg_resources is deprecated as an API', UserWarning),
    # mmseg's own decode heads call its deprecated loss builder.
    ('``build_loss`` would be deprecated soon', UserWarning),
    # mmseg's advice for 2-class models; CAT-Seg scores every class of its vocabulary anyway.
    ('For binary segmentation, we suggest using', UserWarning),
    # mmseg's default runtime builds its visualisation hook off; --show-dir turns it on.
    ('The draw is False, it means that the hook for visualization', UserWarning),
)


def quiet_dormant_stack_notices() -> None:
    """Ignore exactly the ``DORMANT_STACK_NOTICES``: matched by message start and category."""
    for start, category in DORMANT_STACK_NOTICES:
        warnings.filterwarnings('ignore', message=re.escape(start), category=category)


def mmcv_has_compiled_ops() -> bool:
    """Whether the installed mmcv ships its compiled extension (full mmcv, not mmcv-lite)."""
    return importlib.util.find_spec('mmcv._ext') is not None


class _MissingOp:
    """Stands for a compiled mmcv op that mmcv-lite lacks; fails only when used."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f'mmcv.ops.{self.name} needs the compiled mmcv ops, which mmcv-lite '
                           'does not have; install full mmcv 2.1.x to use it (see README)')


class _LiteOps(types.ModuleType):
    """``mmcv.ops`` for mmcv-lite: pure-PyTorch ops, clear errors for the compiled rest."""

    def __getattr__(self, name: str):
        if name.startswith('__'):
            raise AttributeError(name)
        return _MissingOp(name)


def install_lite_mmcv_ops() -> bool:
    """Register ``_LiteOps`` as ``mmcv.ops`` when compiled ops are absent; True if installed."""
    if mmcv_has_compiled_ops() or isinstance(sys.modules.get('mmcv.ops'), _LiteOps):
        return False
    import mmcv
    ops_dir = Path(mmcv.__file__).parent / 'ops'
    ops = _LiteOps('mmcv.ops', 'mmcv.ops for mmcv-lite (see cat_seg.compat)')
    ops.__path__ = [str(ops_dir)]
    spec = importlib.util.spec_from_file_location('mmcv.ops.point_sample',
                                                  ops_dir / 'point_sample.py')
    point_sample = importlib.util.module_from_spec(spec)
    sys.modules['mmcv.ops'] = ops
    sys.modules['mmcv.ops.point_sample'] = point_sample
    spec.loader.exec_module(point_sample)
    ops.point_sample = point_sample.point_sample
    mmcv.ops = ops
    return True


def _history_buffer_getstate(self) -> dict:
    """State without the built-in statistics functions (see 2. above)."""
    state = dict(self.__dict__)
    custom = {name: method for name, method in type(self)._statistics_methods.items()
              if getattr(type(self), name, None) is not method}
    if custom:
        state['statistics_methods'] = custom
    return state


def runner_checkpoint_safe_globals() -> list:
    """The non-tensor types of an mmengine runner checkpoint, none of which can run code."""
    from mmengine.logging.history_buffer import HistoryBuffer
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    dtype_classes = [cls for _, cls in inspect.getmembers(np.dtypes, inspect.isclass)]
    return [HistoryBuffer, multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype,
            *dtype_classes]


def make_runner_checkpoints_weights_only_loadable() -> None:
    from mmengine.logging.history_buffer import HistoryBuffer
    HistoryBuffer.__getstate__ = _history_buffer_getstate
    torch.serialization.add_safe_globals(runner_checkpoint_safe_globals())


def init_dist_pytorch_without_cuda(backend: str, init_backend: str = 'torch', **kwargs) -> None:
    """mmengine's pytorch-launcher initialisation minus the CUDA device selection."""
    if init_backend != 'torch':
        raise ValueError(f'init_backend={init_backend!r} needs CUDA; only "torch" works on CPU')
    torch.distributed.init_process_group(backend=backend, **kwargs)


def init_dist_slurm_without_cuda(backend: str, port: Optional[int] = None,
                                 init_backend: str = 'torch', **kwargs) -> None:
    """mmengine's slurm-launcher initialisation minus the CUDA device selection: rank, world
    size and local rank from srun's variables, the master the job's first node (``scontrol``)
    unless MASTER_ADDR is set, MASTER_PORT from ``port``, the environment or 29500."""
    if init_backend != 'torch':
        raise ValueError(f'init_backend={init_backend!r} needs CUDA; only "torch" works on CPU')
    if 'MASTER_ADDR' not in os.environ:
        command = ['scontrol', 'show', 'hostnames', os.environ['SLURM_NODELIST']]
        try:
            hosts = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError) as error:
            raise RuntimeError(f'--launcher slurm: `{" ".join(command)}` failed ({error}); set '
                               'MASTER_ADDR to the first node of the job') from None
        os.environ['MASTER_ADDR'] = hosts.split()[0]
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ.update(RANK=os.environ['SLURM_PROCID'], WORLD_SIZE=os.environ['SLURM_NTASKS'],
                      LOCAL_RANK=os.environ.get('SLURM_LOCALID', '0'))
    torch.distributed.init_process_group(backend=backend, **kwargs)


def allow_distributed_runs_without_cuda() -> bool:
    """Route mmengine's pytorch- and slurm-launcher set-up past CUDA when there is none; True
    if patched."""
    if torch.cuda.is_available():
        return False
    from mmengine.dist import utils as dist_utils
    dist_utils._init_dist_pytorch = init_dist_pytorch_without_cuda
    dist_utils._init_dist_slurm = init_dist_slurm_without_cuda
    return True


def keep_optimiser_updates_eager() -> bool:
    """Exclude ``OptimWrapper.update_params`` from compilation (see 5. above); True if patched."""
    from mmengine.optim import OptimWrapper
    if getattr(OptimWrapper.update_params, '_torchdynamo_disable', False):
        return False
    OptimWrapper.update_params = torch.compiler.disable(OptimWrapper.update_params)
    return True


quiet_dormant_stack_notices()
install_lite_mmcv_ops()
allow_distributed_runs_without_cuda()
keep_optimiser_updates_eager()
make_runner_checkpoints_weights_only_loadable()
