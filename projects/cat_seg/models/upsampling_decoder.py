"""Upsampling decoder (paper §3.4): per-class 2x stages fed with higher-resolution guidance."""
from typing import Sequence

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

    def forward(self, x: Tensor, guidance: Tensor) -> Tensor:
        """Class features (B, T, C_in, H, W) and guidance (B, C_g, 2H, 2W) -> (B, T, C_out, 2H, 2W)."""
        batch, classes = x.shape[:2]
        x = self.up(x.flatten(0, 1))
        first = self.convs[0]
        split = x.shape[1]
        x = F.conv2d(x, first.weight[:, :split], padding=1).unflatten(0, (batch, classes))
        if self.guidance_channels:
            x = x + F.conv2d(guidance, first.weight[:, split:], padding=1)[:, None]
        return self.convs[1:](x.flatten(0, 1)).unflatten(0, (batch, classes))


class UpsamplingDecoder(nn.Module):
    """N_U = len(channels) upsampling stages and a 1-channel classifier per class.

    Args:
        in_channels (int): Channels of the aggregated cost embedding (d_F).
        channels (Sequence[int]): Output channels of each stage, e.g. (64, 32).
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
        self.cls_conv = nn.Conv2d(channels[-1], 1, 3, padding=1)

    def forward(self, x: Tensor, guidance: Sequence[Tensor]) -> Tensor:
        """Aggregated cost (B, T, C, H, W) and guidance maps -> logits (B, T, H * 2**N_U, ...)."""
        if len(guidance) != len(self.stages):
            raise ValueError(f'the decoder has {len(self.stages)} stages but got '
                             f'{len(guidance)} guidance maps')
        for stage, proj, level in zip(self.stages, self.guidance_projs, guidance):
            x = stage(x, proj(level))
        batch, classes = x.shape[:2]
        return self.cls_conv(x.flatten(0, 1)).view(batch, classes, *x.shape[-2:])
