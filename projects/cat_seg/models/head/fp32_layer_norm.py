"""Layer normalisation computed in float32 whatever the input, weight or autocast dtype.

CUDA's autocast runs norms in float32; CPU's runs them in bf16, where the gradients of the
weight and bias (sums over every token) disagree with float32 ones. open_clip's ``LayerNormFp32``
casts the input only, so a module converted with ``.half()`` fails on CPU (mixed dtypes).
"""
import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Fp32LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` in float32, returning the input's dtype; the same as ``nn.LayerNorm``
    for float32 inputs and weights.

    Examples:
        >>> norm = Fp32LayerNorm(8).half()
        >>> norm(torch.randn(2, 8).half()).dtype
        torch.float16
    """

    def forward(self, x: Tensor) -> Tensor:
        """(..., C) -> (..., C), normalised over C."""
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        with torch.autocast(x.device.type, enabled=False):
            out = F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps)
        return out.to(x.dtype)
