"""Upsampling decoder (paper §3.4): per-class 2x stages fed with higher-resolution guidance."""
from typing import List, Sequence, Tuple

import torch.nn.functional as F
from mmcv.cnn import ConvModule
from torch import Tensor, nn

from ..cpu_execution import fuse_upsampling, interleave_parities


class UpsamplingStage(nn.Module):
    """ConvTranspose 2x, concatenated guidance, then [Conv3x3 -> GroupNorm -> ReLU] x 2.

    The transposed convolution outputs ``in_channels - guidance_channels`` so that the
    concatenation has ``in_channels`` channels again (official ``Up``). The guidance is shared by
    all classes of an image: the first convolution's weight is split between the class features
    and the guidance, and the guidance part is computed once and broadcast over the classes.

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
        """Class features (B, T, C_in, H, W), projected guidance (B, C_g, 2H, 2W) ->
        (B, T, C_out, 2H, 2W)."""
        batch, classes = x.shape[:2]
        up = self.up(x.flatten(0, 1))                                      # (B*T, C_u, 2H, 2W)
        conv = self.convs[0].weight
        y = F.conv2d(up, conv[:, :self.up.out_channels], padding=1).unflatten(0, (batch, classes))
        if self.guidance_channels:
            y = y + F.conv2d(guidance, conv[:, self.up.out_channels:], padding=1)[:, None]
        return self.convs[1:](y.flatten(0, 1)).unflatten(0, (batch, classes))

    def shared_terms(self, guidance: Tensor) -> Tuple[Tensor, Tensor]:
        """What every class of an image shares in :meth:`forward_cpu`, computed once.

        Args:
            guidance (Tensor): Projected guidance at the output resolution, (B, C_g, 2H, 2W).

        Returns:
            tuple[Tensor, Tensor]: The fused kernel (4 * C_out, C_in, 2, 2) of the transposed
            and the first convolution (:func:`fuse_upsampling`), and the additive term
            (B, C_out, 2H, 2W): the transposed convolution's bias through the 3x3 convolution
            with its zero padding (the fused kernel on an all-ones single-channel input), plus
            the guidance through its part of that convolution.
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

    def forward_cpu(self, x: Tensor, shared_terms: Tuple[Tensor, Tensor]) -> Tensor:
        """:meth:`forward` with the fused kernel: class features (B, T, C_in, H, W) and
        :meth:`shared_terms` -> (B, T, C_out, 2H, 2W)."""
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

    def forward(self, x: Tensor, guidance: Sequence[Tensor]) -> Tensor:
        """Aggregated cost (B, T, C, H, W) and guidance maps, coarse to fine -> logits
        (B, T, H * 2**N_U, W * 2**N_U)."""
        self._check_guidance(guidance)
        for stage, proj, level in zip(self.stages, self.guidance_projs, guidance):
            x = stage(x, proj(level))
        return self._classify(x)

    def shared_terms(self, guidance: Sequence[Tensor]) -> List[Tuple[Tensor, Tensor]]:
        """Each stage's :meth:`UpsamplingStage.shared_terms` of its projected guidance,
        computed once per image for all class chunks of :meth:`forward_cpu`."""
        self._check_guidance(guidance)
        return [stage.shared_terms(proj(level))
                for stage, proj, level in zip(self.stages, self.guidance_projs, guidance)]

    def forward_cpu(self, x: Tensor, shared_terms: Sequence[Tuple[Tensor, Tensor]]) -> Tensor:
        """:meth:`forward` of a class chunk with the fused stages and :meth:`shared_terms`."""
        for stage, terms in zip(self.stages, shared_terms):
            x = stage.forward_cpu(x, terms)
        return self._classify(x)

    def _check_guidance(self, guidance: Sequence[Tensor]) -> None:
        if self.stages and len(guidance) != len(self.stages):   # no stages: guidance unused
            raise ValueError(f'the decoder has {len(self.stages)} stages but got '
                             f'{len(guidance)} guidance maps')

    def _classify(self, x: Tensor) -> Tensor:
        """Stage output (B, T, C, H, W) -> one logit per class and pixel, (B, T, H, W)."""
        batch, classes = x.shape[:2]
        return self.cls_conv(x.flatten(0, 1)).view(batch, classes, *x.shape[-2:])
