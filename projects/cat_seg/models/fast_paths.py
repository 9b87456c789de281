"""The bodies of the execution plans' fast paths (``execution.ExecutionPlan``): the same
functions as the plain modules, computed with fewer FLOPs, fused kernels or buffers updated in
place. Every function here is exact (equal to the plain computation up to float rounding).
"""
from functools import lru_cache
from typing import Optional, Tuple

import torch
from torch import Tensor, nn


# ----------------------------------------------------------------------------- element-wise
def elu_plus_one(x: Tensor) -> Tensor:
    """elu(x) + 1 as exp(min(x, 0)) + max(x, 0): torch's CPU ELU uses a scalar expm1."""
    return torch.exp(x.clamp(max=0)) + x.relu()


_IN_PLACE = {nn.GELU: lambda act, h: torch.ops.aten.gelu_(h, approximate=act.approximate),
             nn.ReLU: lambda act, h: h.relu_()}


def feed_forward(x: Tensor, fc1: nn.Linear, activation: nn.Module, fc2: nn.Linear,
                 rows_per_step: int) -> Tensor:
    """``fc2(activation(fc1(x)))`` over the last dim of x (..., C) -> (..., C_out).

    Without autograd or autocast, ``rows_per_step`` tokens at a time with the activation in
    place, written into one output (the same values: every token is computed alone).
    """
    if (torch.is_grad_enabled() or torch.is_autocast_enabled(x.device.type)
            or type(activation) not in _IN_PLACE):
        return fc2(activation(fc1(x)))
    rows = x.reshape(-1, x.shape[-1])
    out = rows.new_empty(rows.shape[0], fc2.out_features)
    for start in range(0, rows.shape[0], rows_per_step):
        step = slice(start, start + rows_per_step)
        hidden = _IN_PLACE[type(activation)](activation, fc1(rows[step]))
        torch.addmm(fc2.bias, hidden, fc2.weight.t(), out=out[step])
    return out.view(*x.shape[:-1], fc2.out_features)


# ----------------------------------------------------------------------------- window order
TokenOrder = Optional[Tuple[int, int]]   # None: row-major pixels; (window, shift): window-major


@lru_cache(maxsize=16)
def window_order(height: int, width: int, window: int, shift: int) -> Tensor:
    """Pixels of the grid cyclically shifted by -shift, listed window by window: (H * W,) int64,
    entry i is the row-major pixel index of window-ordered token i."""
    pixels = torch.arange(height * width).view(height, width)
    if shift:
        pixels = pixels.roll((-shift, -shift), dims=(0, 1))
    return pixels.view(height // window, window, width // window, window).transpose(1, 2).flatten()


@lru_cache(maxsize=32)
def token_reorder(height: int, width: int, source: TokenOrder,
                  target: TokenOrder) -> Optional[Tensor]:
    """Index taking tokens from the ``source`` to the ``target`` order; None if they agree."""
    if source == target:   # decided in Python: the plain plan compiles without a data check
        return None

    def pixels(order: TokenOrder) -> Tensor:
        return (torch.arange(height * width) if order is None
                else window_order(height, width, *order))

    source_pixels, target_pixels = pixels(source), pixels(target)
    position = torch.empty_like(source_pixels)
    position[source_pixels] = torch.arange(source_pixels.numel())
    index = position[target_pixels]
    return None if torch.equal(index, torch.arange(index.numel())) else index


def reorder(tokens: Optional[Tensor], index: Optional[Tensor]) -> Optional[Tensor]:
    """Tokens (B, T, L, C) gathered along L by ``token_reorder``'s index (None: unchanged)."""
    if tokens is None or index is None:
        return tokens
    return tokens.index_select(2, index.to(tokens.device))


# ----------------------------------------------------------------------------- fused upsampling
def _parity_taps() -> Tensor:
    """S[a, d, t, p] (2, 3, 2, 2): 1 where tap d of a 3x3 convolution (padding 1) at output
    parity a of a 2x-upsampled grid reads kernel row p of the stride-2 transposed convolution
    at low-resolution row offset t - 1 + a, else 0."""
    taps = torch.zeros(2, 3, 2, 2)
    for parity in range(2):
        for tap in range(3):
            taps[parity, tap, (parity + tap + 1) // 2 - parity, (parity + tap + 1) % 2] = 1
    return taps


def fuse_upsampling(up_weight: Tensor, conv_weight: Tensor) -> Tensor:
    """A stride-2 2x2 transposed convolution then a 3x3 convolution, as one 2x2 convolution on
    the low-resolution grid (both linear, nothing between them): half the FLOPs of the two.

    Args:
        up_weight (Tensor): Transposed convolution weight, (C_in, C_u, 2, 2).
        conv_weight (Tensor): 3x3 convolution weight over its output, (C_out, C_u, 3, 3).

    Returns:
        Tensor: (4 * C_out, C_in, 2, 2) for ``F.conv2d(x, w, padding=1)``; output channel
        (a, b, o) at (i + a, j + b) is channel o of output pixel (2i + a, 2j + b).
    """
    taps = _parity_taps().to(conv_weight)
    fused = torch.einsum('AYip,BXjq,ouYX,cupq->ABocij', taps, taps, conv_weight, up_weight)
    return fused.flatten(0, 2)


def interleave_parities(y: Tensor, height: int, width: int) -> Tensor:
    """(N, 4 * C, H + 1, W + 1) parity outputs of a fused kernel -> (N, C, 2H, 2W).

    Output pixel (2i + a, 2j + b) is y[:, (a, b, :), i + a, j + b]: one strided view read by a
    single copy, whose result is channels-last, the layout oneDNN runs fastest on.
    """
    y = y.contiguous(memory_format=torch.channels_last)           # (N, H+1, W+1, a, b, C)
    batch, channels = y.shape[0], y.shape[1] // 4
    row, col = y.stride(2), y.stride(3)
    parities = y.as_strided(
        (batch, height, 2, width, 2, channels),
        (y.stride(0), row, row + 2 * channels, col, col + channels, 1))  # (N, i, a, j, b, C)
    out = torch.empty_like(parities, memory_format=torch.contiguous_format).copy_(parities)
    return out.flatten(1, 2).flatten(2, 3).permute(0, 3, 1, 2)
