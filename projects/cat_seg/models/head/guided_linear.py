"""A linear layer over ``concat([x, guidance])`` that never materialises the concatenation."""
from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn


class GuidedLinear(nn.Linear):
    """``Linear(concat([x, g], -1))`` computed as ``W_x x + (W_g g + b)``.

    CAT-Seg concatenates guidance shared by many tokens (an image's features for every class, a
    class's text feature for every pixel) before the query/key projections (paper Eq. 4). Splitting
    the weight gives the same result while the guidance term is computed once and broadcast.
    The parameter layout is that of the concatenated ``nn.Linear`` (official checkpoints).

    Args:
        in_features (int): Channels of ``x``.
        guidance_features (int): Channels of ``g``; 0 makes this a plain linear layer.
        out_features (int): Output channels.
    """

    def __init__(self, in_features: int, guidance_features: int, out_features: int):
        super().__init__(in_features + guidance_features, out_features)
        self.split = in_features

    def forward(self, x: Tensor, guidance: Optional[Tensor] = None) -> Tensor:
        """``x`` (..., C_x) and ``guidance`` broadcastable to (..., C_g) -> (..., C_out)."""
        if guidance is None:
            if self.split != self.in_features:
                raise ValueError(f'this layer expects {self.in_features - self.split} guidance '
                                 'channels but got no guidance')
            return super().forward(x)
        return (F.linear(x, self.weight[:, :self.split])
                + F.linear(guidance, self.weight[:, self.split:], self.bias))
