"""Mixed-precision training on any device: mmengine's ``AmpOptimWrapper``, also on CPUs."""
from typing import Union

import torch
from mmengine.device import get_device
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmseg.registry import OPTIM_WRAPPERS


def default_amp_dtype(device: str) -> torch.dtype:
    """bf16 where the device computes it (CPU autocast has only bf16; recent GPUs), else fp16,
    whose narrow range needs the loss scaling the wrapper applies."""
    if device == 'cpu' or (device == 'cuda' and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


@OPTIM_WRAPPERS.register_module()
class CATSegAmpOptimWrapper(AmpOptimWrapper):
    """``AmpOptimWrapper`` (autocast + ``GradScaler``) with a default dtype per device, which
    also trains on CPUs, where mmengine 0.10.7's wrapper refuses to start.

    ``tools/train.py --amp`` selects it. On CUDA it is mmengine's wrapper unchanged; on a CPU
    the forward pass runs under bf16 autocast and the scaler is ``torch.amp.GradScaler('cpu')``.

    Args:
        loss_scale (str | float | dict): 'dynamic', a fixed initial scale, or ``GradScaler``
            arguments, as ``AmpOptimWrapper``. Defaults to 'dynamic'.
        dtype (str | torch.dtype, optional): Autocast dtype; None: :func:`default_amp_dtype`.
        **kwargs: ``AmpOptimWrapper`` / ``OptimWrapper`` arguments (``optimizer``, ...).

    Examples:
        >>> optim_wrapper = dict(type='CATSegAmpOptimWrapper', optimizer=dict(type='AdamW'))
    """

    def __init__(self, loss_scale: Union[str, float, dict] = 'dynamic',
                 dtype: Union[str, torch.dtype, None] = None, **kwargs):
        device = get_device()
        dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        dtype = default_amp_dtype(device) if dtype is None else dtype
        if device != 'cpu':
            super().__init__(loss_scale=loss_scale, dtype=dtype, **kwargs)
            return
        if dtype != torch.bfloat16:
            raise ValueError(f'CATSegAmpOptimWrapper: dtype={dtype} cannot autocast on a CPU; '
                             "use 'bfloat16' (or leave dtype unset)")
        OptimWrapper.__init__(self, **kwargs)
        self._scale_update_param = loss_scale if isinstance(loss_scale, float) else None
        self.loss_scaler = torch.amp.GradScaler('cpu', **scaler_arguments(loss_scale))
        self.cast_dtype = dtype


def scaler_arguments(loss_scale: Union[str, float, dict]) -> dict:
    """``GradScaler`` keyword arguments of an ``AmpOptimWrapper`` ``loss_scale``."""
    if loss_scale == 'dynamic':
        return {}
    if isinstance(loss_scale, float):
        return dict(init_scale=loss_scale)
    if isinstance(loss_scale, dict):
        return dict(loss_scale)
    raise TypeError(f"loss_scale={loss_scale!r} must be 'dynamic', a float or a dict of "
                    'GradScaler arguments')
