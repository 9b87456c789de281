"""Activation checkpointing (mmseg/mmpretrain's ``with_cp``): a module's activations are
recomputed in the backward pass instead of kept, trading compute for memory; same gradients."""
from typing import Callable

import torch
import torch.utils.checkpoint as cp


def checkpointed(enabled: bool, function: Callable, *args):
    """``function(*args)``, checkpointed when ``enabled`` and gradients are being recorded.

    Non-reentrant checkpointing: right also when no input needs a gradient (a frozen stem)
    and with non-tensor arguments (plans, chunk lists).
    """
    if enabled and torch.is_grad_enabled():
        return cp.checkpoint(function, *args, use_reentrant=False)
    return function(*args)
