"""``torch.compile`` of the parts of CAT-Seg whose shapes are fixed for a vocabulary size.

The CLIP image encoder, the guidance, the head (one call per batch of views) and the training
loss are compiled, each in place (``nn.Module.compile``: parameter names and checkpoints are
unchanged). The Python around them (views, sliding windows, post-processing) stays eager: its
loops depend on image sizes, which would recompile for every new size.
"""
from typing import List, Optional, Union

from torch import nn


def compile_options(value: Union[bool, dict, None]) -> Optional[dict]:
    """``torch.compile`` keyword arguments of a ``model.compile`` setting, None to stay eager.

    Args:
        value (bool | dict | None): True (default options), False / None (eager) or a dict of
            ``torch.compile`` options, e.g. ``dict(mode='max-autotune')``.

    Raises:
        TypeError: If ``value`` is none of these.
    """
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, dict):
        return dict(value)
    raise TypeError(f'model.compile={value!r} must be True, False or a dict of torch.compile '
                    "options, e.g. dict(mode='max-autotune')")


def compiled_parts(model: nn.Module) -> List[nn.Module]:
    """The modules :func:`compile_parts` compiles: ``backbone``, ``guidance``, ``decode_head``
    and each of the head's losses (which compile their computation, not their label check)."""
    losses = model.decode_head.loss_decode
    losses = list(losses) if isinstance(losses, nn.ModuleList) else [losses]
    return [model.backbone, model.guidance, model.decode_head, *losses]


def compile_parts(model: nn.Module, options: dict) -> None:
    """Compile every part of :func:`compiled_parts` in place with ``torch.compile(**options)``."""
    for part in compiled_parts(model):
        part.compile(**options)
