"""Upsampling decoder (paper §3.4): per-class 2x stages fed with higher-resolution guidance."""
from typing import NamedTuple, Optional, Sequence

import torch.nn.functional as F
from mmcv.cnn import ConvModule
from torch import Tensor, nn

from ..checkpointing import checkpointed
from ..execution import PLAIN_PLAN, ExecutionPlan, chunk_of, class_chunks, concat_classes
from ..fast_paths import fuse_upsampling, interleave_parities


class StageTerms(NamedTuple):
    """What every class of an image shares in an :class:`UpsamplingStage`, computed once.

    Attributes:
        fused_weight (Tensor, optional): With ``plan.fused_upsampling``, the transposed and the
            first convolution as one kernel, (4 * C_out, C_in, 2, 2); else None.
        term (Tensor, optional): Added to every class's first convolution, (B, C_out, 2H, 2W):
            the guidance through its part of that convolution and, when fused, the transposed
            convolution's bias through it; None when there is neither.
    """

    fused_weight: Optional[Tensor]
    term: Optional[Tensor]


class UpsamplingStage(nn.Module):
    """ConvTranspose 2x, concatenated guidance, then [Conv3x3 -> GroupNorm -> ReLU] x 2.

    The transposed convolution outputs ``in_channels - guidance_channels`` so that the
    concatenation has ``in_channels`` channels again (official ``Up``). The guidance is shared by
    all classes of an image: the first convolution's weight is split between the class features
    and the guidance, and the guidance part is computed once and broadcast over the classes.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        guidance_channels (int): Projected guidance channels (must be < in_channels); 0 for a
            stage without guidance.
        channels_per_group (int): GroupNorm groups = out_channels // this (official: 16),
            which must be at least 1 and divide out_channels (e.g. 24 -> 1 group, 40 -> 2).
    """

    def __init__(self, in_channels: int, out_channels: int, guidance_channels: int,
                 channels_per_group: int = 16):
        super().__init__()
        groups = out_channels // channels_per_group
        if groups < 1 or out_channels % groups:
            raise ValueError(f'decoder channels {out_channels} give GroupNorm {groups} groups '
                             f'({out_channels} // channels_per_group={channels_per_group}), which '
                             f'must be at least 1 and divide {out_channels}')
        if not 0 <= guidance_channels < in_channels:
            raise ValueError(f'decoder guidance projection channels {guidance_channels} must be '
                             f'smaller than the stage input channels {in_channels}')
        self.guidance_channels = guidance_channels
        self.up = nn.ConvTranspose2d(in_channels, in_channels - guidance_channels, 2, stride=2)
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.GroupNorm(groups, out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.GroupNorm(groups, out_channels), nn.ReLU(inplace=True))

    def shared_terms(self, guidance: Tensor, plan: ExecutionPlan = PLAIN_PLAN) -> StageTerms:
        """The :class:`StageTerms` of projected guidance (B, C_g, 2H, 2W), for :meth:`forward`."""
        term = (F.conv2d(guidance, self.convs[0].weight[:, self.up.out_channels:], padding=1)
                if self.guidance_channels else None)
        if not plan.fused_upsampling:
            return StageTerms(None, term)
        # The transposed convolution's bias through the 3x3 convolution and its zero padding:
        # the fused kernel of the bias on an all-ones single-channel input.
        conv_weight = self.convs[0].weight[:, :self.up.out_channels]
        height, width = guidance.shape[-2] // 2, guidance.shape[-1] // 2
        bias_weight = fuse_upsampling(self.up.bias[None, :, None, None].expand(1, -1, 2, 2),
                                      conv_weight)
        ones = guidance.new_ones(1, 1, height, width)
        bias_term = interleave_parities(F.conv2d(ones, bias_weight, padding=1), height, width)
        return StageTerms(fuse_upsampling(self.up.weight, conv_weight),
                          bias_term if term is None else bias_term + term)

    def forward(self, x: Tensor, terms: StageTerms,
                plan: ExecutionPlan = PLAIN_PLAN) -> Tensor:
        """Class features (B, T, C_in, H, W) and :meth:`shared_terms` -> (B, T, C_out, 2H, 2W)."""
        batch, classes, _, height, width = x.shape
        if plan.fused_upsampling:
            y = interleave_parities(F.conv2d(x.flatten(0, 1), terms.fused_weight, padding=1),
                                    height, width)
        else:
            up = self.up(x.flatten(0, 1))                                  # (B*T, C_u, 2H, 2W)
            y = F.conv2d(up, self.convs[0].weight[:, :self.up.out_channels], padding=1)
        y = y.unflatten(0, (batch, classes))
        if terms.term is not None:
            y = y.add_(terms.term[:, None])    # y is new: adding in place saves a copy of it
        return self.convs[1:](y.flatten(0, 1)).unflatten(0, (batch, classes))


class UpsamplingDecoder(nn.Module):
    """N_U = len(channels) upsampling stages and a 1-channel classifier per class.

    Args:
        in_channels (int): Channels of the aggregated cost embedding (d_F).
        channels (Sequence[int]): Output channels of each stage, e.g. (64, 32); empty for the
            "no upsampling decoder" ablation (v1 Table 10): the classifier then runs on the
            aggregated cost at its own resolution and the segmentor upsamples its output.
        guidance_channels (Sequence[int]): Input channels of each stage's guidance, coarse to
            fine, e.g. (256, 128).
        guidance_proj_channels (Sequence[int]): Projected guidance channels, e.g. (32, 16); a
            stage with 0 takes no guidance (official DECODER_GUIDANCE_DIMS starting with 0).
        channels_per_group (int): GroupNorm channels per group. Defaults to 16.
        with_cp (bool): Checkpoint each stage in training (``CATSegHead.with_cp``). Defaults
            to False.
    """

    def __init__(self, in_channels: int, channels: Sequence[int],
                 guidance_channels: Sequence[int], guidance_proj_channels: Sequence[int],
                 channels_per_group: int = 16, with_cp: bool = False):
        super().__init__()
        self.with_cp = with_cp
        if not len(channels) == len(guidance_channels) == len(guidance_proj_channels):
            raise ValueError(f'decoder_channels={tuple(channels)}, decoder_guidance_channels='
                             f'{tuple(guidance_channels)} and decoder_guidance_proj_channels='
                             f'{tuple(guidance_proj_channels)} need one entry per stage')
        # A stage without guidance still gets the map: the fused plan reads its size.
        self.guidance_projs = nn.ModuleList(
            ConvModule(c_in, c_out, 3, padding=1, norm_cfg=None, act_cfg=dict(type='ReLU'))
            if c_out else nn.Identity()
            for c_in, c_out in zip(guidance_channels, guidance_proj_channels))
        stage_in = (in_channels, *channels[:-1])
        self.stages = nn.ModuleList(
            UpsamplingStage(c_in, c_out, c_g, channels_per_group)
            for c_in, c_out, c_g in zip(stage_in, channels, guidance_proj_channels))
        self.cls_conv = nn.Conv2d(channels[-1] if channels else in_channels, 1, 3, padding=1)

    def forward(self, x: Tensor, guidance: Sequence[Tensor], plan: ExecutionPlan = PLAIN_PLAN,
                class_chunk: Optional[int] = None) -> Tensor:
        """Logits of the aggregated cost.

        Args:
            x (Tensor): Aggregated cost embedding, channels last, (B, T, H, W, C).
            guidance (Sequence[Tensor]): Decoder guidance maps, coarse to fine.
            plan (ExecutionPlan): How to run it. Defaults to the plain plan.
            class_chunk (int, optional): Classes decoded at a time; None: all.

        Returns:
            Tensor: (B, T, H * 2**N_U, W * 2**N_U).
        """
        self._check_guidance(guidance)
        terms = [stage.shared_terms(proj(level), plan)      # once for every class chunk
                 for stage, proj, level in zip(self.stages, self.guidance_projs, guidance)]
        chunks = class_chunks(x.shape[1], class_chunk)
        return concat_classes([
            self._decode(x if len(chunks) == 1 else chunk_of(x, chunk), terms, plan)
            for chunk in chunks])

    def _decode(self, x: Tensor, terms: Sequence[StageTerms], plan: ExecutionPlan) -> Tensor:
        """The stages and the classifier: (B, t, H, W, C) -> (B, t, H * 2**N_U, W * 2**N_U)."""
        x = x.permute(0, 1, 4, 2, 3)                                       # (B, t, C, H, W)
        for stage, stage_terms in zip(self.stages, terms):
            x = checkpointed(self.with_cp and self.training, stage, x, stage_terms, plan)
        return self._classify(x)

    def _check_guidance(self, guidance: Sequence[Tensor]) -> None:
        if self.stages and len(guidance) != len(self.stages):   # no stages: guidance unused
            raise ValueError(f'the decoder has {len(self.stages)} stages but got '
                             f'{len(guidance)} guidance maps')

    def _classify(self, x: Tensor) -> Tensor:
        """Stage output (B, T, C, H, W) -> one logit per class and pixel, (B, T, H, W)."""
        batch, classes = x.shape[:2]
        return self.cls_conv(x.flatten(0, 1)).view(batch, classes, *x.shape[-2:])
