"""Upsampling decoder (paper §3.4): per-class 2x stages fed with higher-resolution guidance."""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from torch import Tensor, nn


def _parity_taps() -> Tensor:
    """Where each tap of a 3x3 convolution (padding 1) on a 2x-upsampled grid reads.

    Output row 2i + a, tap d reads upsampled row 2i + a + d - 1, which is low-resolution row
    i + a - 1 + t at kernel row p of the stride-2 transposed convolution.

    Returns:
        Tensor: S[a, d, t, p] (2, 3, 2, 2), 1 where (a, d) reads (t, p), else 0.
    """
    taps = torch.zeros(2, 3, 2, 2)
    for parity in range(2):
        for tap in range(3):
            taps[parity, tap, (parity + tap + 1) // 2 - parity, (parity + tap + 1) % 2] = 1
    return taps


def fuse_upsampling(up_weight: Tensor, conv_weight: Tensor) -> Tensor:
    """A stride-2 2x2 transposed convolution followed by a 3x3 convolution, as one 2x2 one.

    Both are linear with nothing between them, so their composition is a convolution on the
    low-resolution grid: per output parity (a, b) a 2x2 kernel over rows i + a - 1 .. i + a.

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

    Output pixel (2i + a, 2j + b) is y[:, (a, b, :), i + a, j + b]: one strided view of y read
    by a single copy. The result is channels-last in memory, the layout oneDNN runs fastest on.
    """
    y = y.contiguous(memory_format=torch.channels_last)           # (N, H+1, W+1, a, b, C)
    batch, channels = y.shape[0], y.shape[1] // 4
    row, col = y.stride(2), y.stride(3)
    parities = y.as_strided(
        (batch, height, 2, width, 2, channels),
        (y.stride(0), row, row + 2 * channels, col, col + channels, 1))  # (N, i, a, j, b, C)
    out = torch.empty_like(parities, memory_format=torch.contiguous_format).copy_(parities)
    return out.flatten(1, 2).flatten(2, 3).permute(0, 3, 1, 2)


class UpsamplingStage(nn.Module):
    """ConvTranspose 2x, concatenated guidance, then [Conv3x3 -> GroupNorm -> ReLU] x 2.

    The transposed convolution outputs ``in_channels - guidance_channels`` so that the
    concatenation has ``in_channels`` channels again (official ``Up``). Its parameters and those
    of the first convolution keep the official layout, but they are applied differently, with the
    same result (up to float rounding):

    - the first convolution's weight is split between the class features and the guidance; the
      guidance (shared by all classes of an image) is convolved once and broadcast, never
      repeated per class;
    - the transposed convolution and the class part of the first convolution are one 2x2
      convolution on the low-resolution grid (:func:`fuse_upsampling`): half the FLOPs of the
      two (ViT-B, per class: 311 -> 164 MFLOP in stage 1, 311 -> 157 in stage 2).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        guidance_channels (int): Projected guidance channels (must be < in_channels).
        channels_per_group (int): GroupNorm groups = out_channels // this (official: 16).
    """

    def __init__(self, in_channels: int, out_channels: int, guidance_channels: int,
                 channels_per_group: int = 16):
        super().__init__()
        if out_channels % channels_per_group:
            raise ValueError(f'decoder channels {out_channels} must be a multiple of '
                             f'channels_per_group={channels_per_group} for GroupNorm')
        if not 0 <= guidance_channels < in_channels:
            raise ValueError(f'decoder guidance projection channels {guidance_channels} must be '
                             f'smaller than the stage input channels {in_channels}')
        groups = out_channels // channels_per_group
        self.guidance_channels = guidance_channels
        self.up = nn.ConvTranspose2d(in_channels, in_channels - guidance_channels, 2, stride=2)
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.GroupNorm(groups, out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.GroupNorm(groups, out_channels), nn.ReLU(inplace=True))

    def shared_terms(self, guidance: Tensor) -> Tuple[Tensor, Tensor]:
        """What every class of an image shares, computed once for all classes and chunks.

        Args:
            guidance (Tensor): Projected guidance at the output resolution, (B, C_g, 2H, 2W).

        Returns:
            tuple[Tensor, Tensor]: The fused kernel (4 * C_out, C_in, 2, 2), and the additive
            term (B, C_out, 2H, 2W): the transposed convolution's bias through the 3x3
            convolution with its zero padding (the fused kernel applied to an all-ones input
            with a single channel), plus the guidance through its part of that convolution.
        """
        conv_weight = self.convs[0].weight[:, :self.up.out_channels]
        height, width = guidance.shape[-2] // 2, guidance.shape[-1] // 2
        bias_weight = fuse_upsampling(self.up.bias[None, :, None, None].expand(1, -1, 2, 2),
                                      conv_weight)
        ones = guidance.new_ones(1, 1, height, width)
        term = interleave_parities(F.conv2d(ones, bias_weight, padding=1), height, width)
        if self.guidance_channels:
            term = term + F.conv2d(guidance, self.convs[0].weight[:, -self.guidance_channels:],
                                   padding=1)
        return fuse_upsampling(self.up.weight, conv_weight), term

    def forward(self, x: Tensor, shared_terms: Tuple[Tensor, Tensor]) -> Tensor:
        """Class features (B, T, C_in, H, W) and ``shared_terms()`` -> (B, T, C_out, 2H, 2W)."""
        batch, classes, _, height, width = x.shape
        weight, term = shared_terms
        y = F.conv2d(x.flatten(0, 1), weight, padding=1)
        x = interleave_parities(y, height, width).unflatten(0, (batch, classes))
        x.add_(term[:, None])   # x is a new tensor: in place saves a copy of it
        return self.convs[1:](x.flatten(0, 1)).unflatten(0, (batch, classes))


class UpsamplingDecoder(nn.Module):
    """N_U = len(channels) upsampling stages and a 1-channel classifier per class.

    Args:
        in_channels (int): Channels of the aggregated cost embedding (d_F).
        channels (Sequence[int]): Output channels of each stage, e.g. (64, 32); empty for the
            "no upsampling decoder" ablation (v1 Table 10): the classifier then runs on the
            aggregated cost at its own resolution and the segmentor upsamples its output.
        guidance_channels (Sequence[int]): Input channels of each stage's guidance, coarse to
            fine, e.g. (256, 128).
        guidance_proj_channels (Sequence[int]): Projected guidance channels, e.g. (32, 16).
        channels_per_group (int): GroupNorm channels per group. Defaults to 16.
    """

    def __init__(self, in_channels: int, channels: Sequence[int],
                 guidance_channels: Sequence[int], guidance_proj_channels: Sequence[int],
                 channels_per_group: int = 16):
        super().__init__()
        if not len(channels) == len(guidance_channels) == len(guidance_proj_channels):
            raise ValueError(f'decoder_channels={tuple(channels)}, decoder_guidance_channels='
                             f'{tuple(guidance_channels)} and decoder_guidance_proj_channels='
                             f'{tuple(guidance_proj_channels)} need one entry per stage')
        self.guidance_projs = nn.ModuleList(
            ConvModule(c_in, c_out, 3, padding=1, norm_cfg=None, act_cfg=dict(type='ReLU'))
            for c_in, c_out in zip(guidance_channels, guidance_proj_channels))
        stage_in = (in_channels, *channels[:-1])
        self.stages = nn.ModuleList(
            UpsamplingStage(c_in, c_out, c_g, channels_per_group)
            for c_in, c_out, c_g in zip(stage_in, channels, guidance_proj_channels))
        self.cls_conv = nn.Conv2d(channels[-1] if channels else in_channels, 1, 3, padding=1)

    def shared_terms(self, guidance: Sequence[Tensor]) -> List[Tuple[Tensor, Tensor]]:
        """Each stage's :meth:`UpsamplingStage.shared_terms` of its projected guidance,
        computed once per image for all classes (and class chunks)."""
        if self.stages and len(guidance) != len(self.stages):   # no stages: guidance unused
            raise ValueError(f'the decoder has {len(self.stages)} stages but got '
                             f'{len(guidance)} guidance maps')
        return [stage.shared_terms(proj(level))
                for stage, proj, level in zip(self.stages, self.guidance_projs, guidance)]

    def forward(self, x: Tensor, guidance: Sequence[Tensor],
                shared_terms: Optional[Sequence[Tuple[Tensor, Tensor]]] = None) -> Tensor:
        """Aggregated cost (B, T, C, H, W) and guidance maps -> logits (B, T, H * 2**N_U, ...).

        ``shared_terms`` (from :meth:`shared_terms`) skips recomputing them per chunk.
        """
        if shared_terms is None:
            shared_terms = self.shared_terms(guidance)
        for stage, terms in zip(self.stages, shared_terms):
            x = stage(x, terms)
        batch, classes = x.shape[:2]
        return self.cls_conv(x.flatten(0, 1)).view(batch, classes, *x.shape[-2:])
