"""Upsampling decoder (paper §3.4): per-class 2x stages fed with higher-resolution guidance."""
from typing import List, Optional, Sequence

import torch.nn.functional as F
from mmcv.cnn import ConvModule
from torch import Tensor, nn


class UpsamplingStage(nn.Module):
    """ConvTranspose 2x, concatenated guidance, then [Conv3x3 -> GroupNorm -> ReLU] x 2.

    The transposed convolution outputs ``in_channels - guidance_channels`` so that the
    concatenation has ``in_channels`` channels again (official ``Up``). The first convolution's
    weight is applied to the class features and the guidance separately, so the guidance (shared
    by all classes of an image) is convolved once and broadcast, never repeated per class.

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

    def guidance_term(self, guidance: Tensor) -> Optional[Tensor]:
        """The projected guidance (B, C_g, 2H, 2W) through its part of the first convolution,
        (B, C_out, 2H, 2W): shared by every class, so computed once per image."""
        if not self.guidance_channels:
            return None
        return F.conv2d(guidance, self.convs[0].weight[:, -self.guidance_channels:], padding=1)

    def forward(self, x: Tensor, guidance_term: Optional[Tensor]) -> Tensor:
        """Class features (B, T, C_in, H, W) and ``guidance_term()`` -> (B, T, C_out, 2H, 2W)."""
        batch, classes = x.shape[:2]
        x = self.up(x.flatten(0, 1))
        weight = self.convs[0].weight[:, :x.shape[1]]
        x = F.conv2d(x, weight, padding=1).unflatten(0, (batch, classes))
        if guidance_term is not None:
            x = x + guidance_term[:, None]
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

    def guidance_terms(self, guidance: Sequence[Tensor]) -> List[Optional[Tensor]]:
        """Each stage's guidance contribution (projection, then its share of the stage's first
        convolution), computed once per image for all classes (and class chunks)."""
        if self.stages and len(guidance) != len(self.stages):   # no stages: guidance unused
            raise ValueError(f'the decoder has {len(self.stages)} stages but got '
                             f'{len(guidance)} guidance maps')
        return [stage.guidance_term(proj(level))
                for stage, proj, level in zip(self.stages, self.guidance_projs, guidance)]

    def forward(self, x: Tensor, guidance: Sequence[Tensor],
                guidance_terms: Optional[Sequence[Optional[Tensor]]] = None) -> Tensor:
        """Aggregated cost (B, T, C, H, W) and guidance maps -> logits (B, T, H * 2**N_U, ...).

        ``guidance_terms`` (from :meth:`guidance_terms`) skips recomputing them per chunk.
        """
        if guidance_terms is None:
            guidance_terms = self.guidance_terms(guidance)
        for stage, term in zip(self.stages, guidance_terms):
            x = stage(x, term)
        batch, classes = x.shape[:2]
        return self.cls_conv(x.flatten(0, 1)).view(batch, classes, *x.shape[-2:])
