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
"""
import importlib.util
import sys
import types
from pathlib import Path


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


install_lite_mmcv_ops()
