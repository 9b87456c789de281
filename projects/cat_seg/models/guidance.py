"""Embedding guidance (paper §3.3, Eq. 4; §3.4): the features that steer aggregation and decoding."""
from typing import NamedTuple, Tuple

from torch import Tensor


class Guidance(NamedTuple):
    """Guidance features for one batch, before the head's projections.

    Attributes:
        spatial (Tensor): Guidance for spatial aggregation, (B, C_v, H, W) on the cost grid.
        decoder (tuple[Tensor]): Guidance for the upsampling decoder stages, coarse to fine:
            stage ``i`` is (B, C_i, H * 2**(i+1), W * 2**(i+1)).
    """

    spatial: Tensor
    decoder: Tuple[Tensor, ...]
