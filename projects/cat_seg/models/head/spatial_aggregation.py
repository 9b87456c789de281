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

from ..execution import PLAIN_PLAN, ExecutionPlan
from ..fast_paths import feed_forward, reorder, token_reorder
from .fp32_layer_norm import Fp32LayerNorm
from .guided_linear import GuidedLinear

# The release fills cross-region pairs of the shifted windows with -100, not -inf (official
# model.py, SwinTransformerBlock): a finite logit, reproduced for parity.
SHIFT_MASK_FILL = -100.0


def window_partition(x: Tensor, window: int) -> Tensor:
    """(..., H, W, C) -> windows (..., nW, window * window, C), row-major windows."""
    *lead, height, width, channels = x.shape
    x = x.view(*lead, height // window, window, width // window, window, channels)
    return x.transpose(-4, -3).reshape(*lead, -1, window * window, channels)


def window_merge(windows: Tensor, window: int, height: int, width: int) -> Tensor:
    """Inverse of :func:`window_partition`: (..., nW, window * window, C) -> (..., H, W, C)."""
    *lead, _, _, channels = windows.shape
    x = windows.view(*lead, height // window, width // window, window, window, channels)
    return x.transpose(-4, -3).reshape(*lead, height, width, channels)


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
    windows = window_partition(region[:, :, None], window)[:, :, 0]        # (nW, N)
    different = windows[:, None, :] != windows[:, :, None]
    return torch.zeros_like(different, dtype=torch.float).masked_fill(different, SHIFT_MASK_FILL)


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
        self.norm1 = Fp32LayerNorm(embed_dims)
        self.attn = nn.Module()
        self.attn.q = GuidedLinear(embed_dims, guidance_channels, embed_dims)
        self.attn.k = GuidedLinear(embed_dims, guidance_channels, embed_dims)
        self.attn.v = nn.Linear(embed_dims, embed_dims)
        self.attn.proj = nn.Linear(embed_dims, embed_dims)
        self.norm2 = Fp32LayerNorm(embed_dims)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), act_layer=nn.GELU)

    def token_order(self, height: int, width: int) -> Tuple[int, int]:
        """(window, shift) of this block on a height x width grid."""
        # As in the release, a grid no larger than the window is one unshifted window.
        window = min(self.window_size, height, width)
        shift = self.shift if min(height, width) > self.window_size else 0
        if height % window or width % window:
            raise ValueError(f'the cost grid {height}x{width} is not divisible by the window '
                             f'size {window}; choose window_size dividing both sides')
        return window, shift

    def forward(self, x: Tensor, guidance: Optional[Tensor], hw_shape: Tuple[int, int],
                plan: ExecutionPlan = PLAIN_PLAN) -> Tensor:
        """One block (paper Eq. 2, 4).

        Args:
            x (Tensor): Cost embedding tokens, (B, T, L = H * W, C): row-major pixels, or this
                block's window order (:meth:`token_order`, ``fast_paths.window_order``) with
                ``plan.window_ordered_tokens``.
            guidance (Tensor, optional): Normalised guidance, (B, 1, L, C_g), in the same
                order, shared by all classes.
            hw_shape (tuple[int, int]): (H, W) of the cost grid.
            plan (ExecutionPlan): How to run it. Defaults to the plain plan.

        Returns:
            Tensor: (B, T, L, C), in the order of ``x``.
        """
        window, shift = self.token_order(*hw_shape)
        mask = shifted_window_mask(*hw_shape, window, shift) if shift else None
        y = self.norm1(x)
        if plan.window_ordered_tokens:
            # Rolls and partitions are a permutation of tokens, done once by the caller.
            q, k, v = (t.unflatten(2, (-1, window ** 2)) for t in
                       (self.attn.q(y, guidance), self.attn.k(y, guidance), self.attn.v(y)))
            out = self._window_attention(q, k, v, mask).flatten(2, 3)
        else:
            y = y.unflatten(2, hw_shape)                                   # (B, T, H, W, C)
            if guidance is not None:
                guidance = guidance.unflatten(2, hw_shape)
            if shift:
                y = y.roll((-shift, -shift), dims=(2, 3))
                if guidance is not None:
                    guidance = guidance.roll((-shift, -shift), dims=(2, 3))
            q, k, v = self.attn.q(y, guidance), self.attn.k(y, guidance), self.attn.v(y)
            windows = [window_partition(t, window) for t in (q, k, v)]   # (B, T, nW, N, C)
            out = window_merge(self._window_attention(*windows, mask), window, *hw_shape)
            if shift:
                out = out.roll((shift, shift), dims=(2, 3))
            out = out.flatten(2, 3)
        x = x + self.attn.proj(out)
        y = self.norm2(x)
        if plan.mlp_rows_per_step:
            return x + feed_forward(y, self.mlp.fc1, self.mlp.act, self.mlp.fc2,
                                    plan.mlp_rows_per_step)
        return x + self.mlp(y)

    def _window_attention(self, q: Tensor, k: Tensor, v: Tensor,
                          mask: Optional[Tensor]) -> Tensor:
        """Multi-head attention inside each window: q, k, v (B, T, nW, N, C) -> (B, T, nW, N, C).

        Windows and heads are views, (B*T*nW, heads, N, d): the 4-D layout fused attention
        kernels take without copies.

        Args:
            mask (Tensor, optional): Additive shift mask, (nW, N, N), tiled over B*T.
        """
        shape = q.shape
        heads = [t.reshape(-1, shape[-2], self.num_heads, shape[-1] // self.num_heads)
                 .transpose(1, 2) for t in (q, k, v)]
        if mask is not None:
            mask = mask.to(q).repeat(shape[0] * shape[1], 1, 1)[:, None]   # (B*T*nW, 1, N, N)
        out = F.scaled_dot_product_attention(*heads, attn_mask=mask)
        return out.transpose(1, 2).reshape(shape)


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
        self.guidance_norm = Fp32LayerNorm(guidance_channels) if guidance_channels else None
        self.blocks = nn.ModuleList(
            GuidedWindowBlock(embed_dims, guidance_channels, num_heads, window_size, shift,
                              mlp_ratio) for shift in (0, window_size // 2))

    def forward(self, x: Tensor, guidance: Optional[Tensor],
                plan: ExecutionPlan = PLAIN_PLAN) -> Tensor:
        """Cost embedding (B, T, H, W, C), guidance (B, H, W, C_g) or None -> (B, T, H, W, C)."""
        height, width = x.shape[2:4]
        if self.guidance_norm is not None:
            guidance = self.guidance_norm(guidance).flatten(1, 2)[:, None]  # (B, 1, H*W, C_g)
        tokens, order = x.flatten(2, 3), None                              # (B, T, H*W, C)
        for block in self.blocks:
            block_guidance = guidance
            if plan.window_ordered_tokens:
                target = block.token_order(height, width)
                tokens = reorder(tokens, token_reorder(height, width, order, target))
                block_guidance = reorder(guidance, token_reorder(height, width, None, target))
                order = target
            tokens = block(tokens, block_guidance, (height, width), plan)
        return reorder(tokens, token_reorder(height, width, order, None)).view(x.shape)
