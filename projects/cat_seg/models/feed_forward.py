"""The aggregation layers' MLP, run on bounded groups of tokens at inference."""
import torch
from torch import Tensor, nn

# Tokens per step of an inference MLP. Its hidden layer (2048 x 512 floats, 4 MiB for d_F = 128)
# then stays in the caches and in glibc's heap, where a whole class chunk's hidden layer (30 MiB
# at 5 views x 5 classes) is streamed from memory and page-faulted at every call. Spatial
# aggregation (ViT-B), medians of 16 runs alternating in one process, both with the activation
# in place: 5 views x 5 classes 162 -> 156 ms, 1 view x 20 classes 128 -> 120 ms.
ROWS_PER_STEP = 2048

_IN_PLACE = {nn.GELU: lambda act, h: torch.ops.aten.gelu_(h, approximate=act.approximate),
             nn.ReLU: lambda act, h: h.relu_()}


def feed_forward(x: Tensor, fc1: nn.Linear, activation: nn.Module, fc2: nn.Linear) -> Tensor:
    """``fc2(activation(fc1(x)))`` over the last dim of x (..., C) -> (..., C_out).

    With autograd recording or autocast, the plain composition; otherwise ``ROWS_PER_STEP``
    tokens at a time with the activation in place, written into one output (the same values:
    every token is computed alone).
    """
    if (torch.is_grad_enabled() or torch.is_autocast_enabled(x.device.type)
            or type(activation) not in _IN_PLACE):
        return fc2(activation(fc1(x)))
    rows = x.reshape(-1, x.shape[-1])
    out = rows.new_empty(rows.shape[0], fc2.out_features)
    for start in range(0, rows.shape[0], ROWS_PER_STEP):
        step = slice(start, start + ROWS_PER_STEP)
        hidden = _IN_PLACE[type(activation)](activation, fc1(rows[step]))
        torch.addmm(fc2.bias, hidden, fc2.weight.t(), out=out[step])
    return out.view(*x.shape[:-1], fc2.out_features)
