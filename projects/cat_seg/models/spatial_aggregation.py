"""Spatial aggregation (paper §3.3, Eq. 2 and 4): Swin blocks run on each class's cost slice.

Each layer is a window block and a shifted-window block without relative position bias; the
normalised image guidance is concatenated to the normalised tokens for queries and keys only.
"""
from functools import lru_cache
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import Tensor, nn

from .guided_linear import GuidedLinear

# The release fills cross-region pairs of the shifted windows with -100, not -inf (official
# model.py, SwinTransformerBlock): a finite logit, reproduced for parity.
SHIFT_MASK_FILL = -100.0


@lru_cache(maxsize=16)
def shifted_window_mask(height: int, width: int, window: int, shift: int) -> Tensor:
    """Additive mask keeping attention inside the regions a cyclic shift brought together.

    Returns:
        Tensor: (num_windows, window**2, window**2), 0 within a region, ``SHIFT_MASK_FILL`` across.
    """
    region = torch.zeros(height, width)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for index, (rows, cols) in enumerate((r, c) for r in bounds for c in bounds):
        region[rows, cols] = index
    windows = partition(region[None, None, :, :, None], window)[0, :, :, 0]  # (nW, N)
    different = windows[:, None, :] != windows[:, :, None]
    return torch.zeros_like(different, dtype=torch.float).masked_fill(different, SHIFT_MASK_FILL)


def partition(x: Tensor, window: int) -> Tensor:
    """(B, T, H, W, C) -> windows (B * T, nW, window * window, C), row-major windows."""
    batch, classes, height, width, channels = x.shape
    x = x.view(batch * classes, height // window, window, width // window, window, channels)
    return x.transpose(2, 3).reshape(batch * classes, -1, window * window, channels)


def merge(windows: Tensor, shape: Tuple[int, ...], window: int) -> Tensor:
    """Inverse of :func:`partition` back to ``shape`` (B, T, H, W, C)."""
    batch, classes, height, width, channels = shape
    x = windows.view(batch * classes, height // window, width // window, window, window, channels)
    return x.transpose(2, 3).reshape(shape)


class GuidedWindowBlock(nn.Module):
    """Pre-norm Swin block whose queries and keys also see the guidance.

    Args:
        embed_dims (int): C.
        guidance_channels (int): Channels of the (normalised) guidance; 0 for none.
        num_heads (int): Attention heads.
        window_size (int): Window side.
        shift (int): Cyclic shift (0 for W-MSA, window_size // 2 for SW-MSA).
        mlp_ratio (float): MLP hidden width over C.
    """

    def __init__(self, embed_dims: int, guidance_channels: int, num_heads: int,
                 window_size: int, shift: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.num_heads, self.window_size, self.shift = num_heads, window_size, shift
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = nn.Module()
        self.attn.q = GuidedLinear(embed_dims, guidance_channels, embed_dims)
        self.attn.k = GuidedLinear(embed_dims, guidance_channels, embed_dims)
        self.attn.v = nn.Linear(embed_dims, embed_dims)
        self.attn.proj = nn.Linear(embed_dims, embed_dims)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), act_layer=nn.GELU)

    def forward(self, x: Tensor, guidance: Optional[Tensor]) -> Tensor:
        """Tokens (B, T, H, W, C) with guidance (B, H, W, C_g) -> (B, T, H, W, C)."""
        height, width = x.shape[2:4]
        # As in the release, a grid no larger than the window is one unshifted window.
        window = min(self.window_size, height, width)
        shift = self.shift if min(height, width) > self.window_size else 0
        if height % window or width % window:
            raise ValueError(f'the cost grid {height}x{width} is not divisible by the window '
                             f'size {window}; choose window_size dividing both sides')
        y = self.norm1(x)
        g = guidance[:, None] if guidance is not None else None      # broadcast over classes
        q, k, v = self.attn.q(y, g), self.attn.k(y, g), self.attn.v(y)
        if shift:
            q, k, v = (t.roll((-shift, -shift), dims=(2, 3)) for t in (q, k, v))
        mask = None
        if shift:
            mask = shifted_window_mask(height, width, window, shift).to(x)[:, None]  # (nW,1,N,N)
        out = self._window_attention(q, k, v, window, mask)
        if shift:
            out = out.roll((shift, shift), dims=(2, 3))
        x = x + self.attn.proj(out)
        return x + self.mlp(self.norm2(x))

    def _window_attention(self, q: Tensor, k: Tensor, v: Tensor, window: int,
                          mask: Optional[Tensor]) -> Tensor:
        """Attention inside windows of q, k, v (B, T, H, W, C) -> (B, T, H, W, C).

        Windows are laid out window-major, (nW, B*T*heads, N, d): a 4-D layout lets torch use its
        fused CPU kernel, and the (nW, 1, N, N) shift mask broadcasts without being repeated for
        every class (4x faster than a 5-D call at 150 classes).
        """
        shape = q.shape
        heads = [partition(t, window).unflatten(-1, (self.num_heads, -1))   # (BT, nW, N, h, d)
                 .permute(1, 0, 3, 2, 4).flatten(1, 2) for t in (q, k, v)]  # (nW, BT*h, N, d)
        out = F.scaled_dot_product_attention(*heads, attn_mask=mask)
        out = out.unflatten(1, (-1, self.num_heads)).permute(1, 0, 3, 2, 4)  # (BT, nW, N, h, d)
        return merge(out.flatten(-2), shape, window)


class SpatialAggregation(nn.Module):
    """W-MSA then SW-MSA over each class's cost embedding, guided by image features.

    Args:
        embed_dims (int): C.
        guidance_channels (int): Projected image guidance channels; 0 for none.
        num_heads (int): Attention heads.
        window_size (int): Window side (12 in the release, half of the 24x24 grid).
        mlp_ratio (float): MLP hidden width over C. Defaults to 4.
    """

    def __init__(self, embed_dims: int, guidance_channels: int, num_heads: int,
                 window_size: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.guidance_norm = nn.LayerNorm(guidance_channels) if guidance_channels else None
        self.blocks = nn.ModuleList(
            GuidedWindowBlock(embed_dims, guidance_channels, num_heads, window_size, shift,
                              mlp_ratio) for shift in (0, window_size // 2))

    def forward(self, x: Tensor, guidance: Optional[Tensor]) -> Tensor:
        """Cost embedding (B, T, H, W, C), guidance (B, H, W, C_g) or None -> (B, T, H, W, C)."""
        if self.guidance_norm is not None:
            guidance = self.guidance_norm(guidance)
        for block in self.blocks:
            x = block(x, guidance)
        return x
