"""Class chunks: the per-class stages of the head run on a few classes at a time."""
from typing import Callable, List, Sequence

import torch
from torch import Tensor


def class_chunks(num_classes: int, size: int) -> List[slice]:
    """Slices of at most ``size`` consecutive classes covering ``range(num_classes)``."""
    return [slice(start, start + size) for start in range(0, num_classes, size)]


def update_chunks(x: Tensor, chunks: Sequence[slice], fn: Callable[[slice], Tensor],
                  inplace: bool = False) -> Tensor:
    """``fn(c)`` for each class chunk ``c`` of x (B, T, ...), collected in a new tensor.

    With ``inplace`` and no gradient recorded, the results overwrite x instead: for callers that
    own x and whose ``fn(c)`` reads nothing of x outside chunks already done or ``c`` itself, so
    that inference keeps a single copy of, e.g., an 847-class cost embedding.
    """
    out = x if inplace and not torch.is_grad_enabled() else torch.empty_like(x)
    for chunk in chunks:
        out[:, chunk] = fn(chunk)
    return out
