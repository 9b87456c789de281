"""Embedding guidance (paper §3.3, Eq. 4; §3.4): the features that steer aggregation and decoding.

Two sources share one interface, ``forward(images, clip_feats) -> Guidance``: the release takes
guidance from CLIP itself (``CATSegCLIPGuidance``), the paper (arXiv v1) from a separate feature
backbone (``CATSegBackboneGuidance``).
"""
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from mmengine.model import BaseModule
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType
from torch import Tensor, nn

if TYPE_CHECKING:  # annotation only: keeps Guidance importable without the CLIP modules
    from ..clip.image_encoder import CLIPImageFeatures


class Guidance(NamedTuple):
    """Guidance features for one batch, before the head's projections.

    Attributes:
        spatial (Tensor): Guidance for spatial aggregation, (B, C_v, H, W) on the cost grid.
        decoder (tuple[Tensor]): Guidance for the upsampling decoder stages, coarse to fine:
            stage ``i`` is (B, C_i, H * 2**(i+1), W * 2**(i+1)).
    """

    spatial: Tensor
    decoder: Tuple[Tensor, ...]


@MODELS.register_module()
class CATSegCLIPGuidance(BaseModule):
    """Guidance from CLIP itself (CVPR 2024 release).

    Spatial guidance is the dense CLIP output; decoder guidance comes from intermediate CLIP
    blocks, each upsampled by a learned transposed convolution (official ``upsample1``/``upsample2``
    in cat_seg_model.py).

    Args:
        in_channels (int): Width W of the CLIP blocks the intermediates come from.
        out_channels (tuple[int]): Channels of each decoder guidance level, coarse to fine.
        scale_factors (tuple[int]): Upsampling factor of each level (kernel = stride = factor).
        init_cfg (dict, optional): Initialisation config. Defaults to None.

    Examples:
        >>> guidance = CATSegCLIPGuidance(64, out_channels=(256, 128), scale_factors=(2, 4))
    """

    # Read by the segmentor: None means this source takes the CLIP views themselves and needs
    # no views of its own (CATSegBackboneGuidance sets both).
    img_size: Optional[Tuple[int, int]] = None
    pad_value: Optional[Tensor] = None

    def __init__(self,
                 in_channels: int,
                 out_channels: Sequence[int] = (256, 128),
                 scale_factors: Sequence[int] = (2, 4),
                 init_cfg: OptConfigType = None):
        super().__init__(init_cfg=init_cfg)
        if len(out_channels) != len(scale_factors):
            raise ValueError(f'out_channels={tuple(out_channels)} and scale_factors='
                             f'{tuple(scale_factors)} must have one entry per decoder level')
        self.upsamplers = nn.ModuleList(
            nn.ConvTranspose2d(in_channels, channels, kernel_size=factor, stride=factor)
            for channels, factor in zip(out_channels, scale_factors))

    def forward(self, images: Tensor, clip_feats: 'CLIPImageFeatures') -> Guidance:
        """Build guidance for a batch.

        Args:
            images (Tensor): CLIP input images, (B, 3, H_img, W_img); unused here, part of the
                guidance-source interface (a separate backbone needs them).
            clip_feats (CLIPImageFeatures): Dense features (B, C, H, W) and one intermediate
                (B, W, H, W) per decoder level, coarse to fine.

        Returns:
            Guidance: ``spatial`` = dense CLIP features, ``decoder`` = upsampled intermediates.
        """
        if len(clip_feats.intermediates) != len(self.upsamplers):
            raise ValueError(f'CLIP returned {len(clip_feats.intermediates)} intermediate blocks '
                             f'but the guidance has {len(self.upsamplers)} levels; make '
                             'backbone.guidance_layers as long as guidance.out_channels')
        decoder = tuple(upsample_patchwise(feat, up)
                        for up, feat in zip(self.upsamplers, clip_feats.intermediates))
        return Guidance(spatial=clip_feats.dense, decoder=decoder)


def upsample_patchwise(x: Tensor, up: nn.ConvTranspose2d) -> Tensor:
    """``up(x)`` for a transposed convolution whose kernel equals its stride, as one matmul.

    Each input pixel then owns its own k x k block of the output, so the convolution is a
    per-pixel linear map to C_out * k * k values. Computed so because torch 2.14's CPU (oneDNN)
    bf16 ``conv_transpose2d`` returns a wrong input gradient at some widths (kernel 4 with 16 or
    24 output channels: cosine 0.03 with fp32), which broke mixed-precision training.

    Args:
        x (Tensor): (B, C_in, H, W).
        up (nn.ConvTranspose2d): Weights (C_in, C_out, k, k), bias (C_out,), stride k.

    Returns:
        Tensor: (B, C_out, k * H, k * W), equal to ``up(x)``.
    """
    batch, _, height, width = x.shape
    channels, k = up.out_channels, up.stride[0]
    y = torch.einsum('bchw,coij->bohiwj', x, up.weight)      # (B, C_out, H, k, W, k)
    return y.reshape(batch, channels, height * k, width * k) + up.bias[:, None, None]


# ImageNet statistics on the 0-255 scale, as the feature backbones were trained with.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


@MODELS.register_module()
class CATSegBackboneGuidance(BaseModule):
    """Guidance from a separate feature backbone (paper v1 §3.3-3.4): ResNet-101 for the ViT-B
    model, Swin-B for the larger ones, built with mmpretrain.

    The backbone returns its stages fine to coarse (e.g. ``out_indices=(0, 1, 2)``: ResNet's
    conv2_x, conv3_x, conv4_x); the coarsest guides aggregation, the others the decoder.

    Its input is views in CLIP's normalisation, (B, 3, H_img, W_img): they are renormalised
    (ImageNet statistics) and resized to ``img_size`` unless they have that size already. The
    official v1 code pads and resizes each branch's image separately (fixture README §3), so a
    whole image's guidance view is the unpadded image padded with ``pad_value`` (zero once
    renormalised) and resized straight to ``img_size``; a 384x384 sliding-window crop is used as
    it is (§9).

    Args:
        backbone (ConfigType): mmpretrain backbone, e.g.
            ``dict(type='mmpretrain.ResNet', depth=101, out_indices=(0, 1, 2))``.
        img_size (int): Side the backbone sees (paper: 384). Defaults to 384.
        clip_mean, clip_std (Sequence[float]): Normalisation of the incoming views: the
            model's ``data_preprocessor`` mean and std (configs take them from there).
        mean, std (Sequence[float]): Normalisation the backbone expects (ImageNet).
        frozen (Sequence[str]): ``fnmatch`` patterns of backbone parameter names that do not
            train, e.g. ``('*',)`` for the whole backbone (v1 Swin-B: SOLVER.BACKBONE_MULTIPLIER
            0). Defaults to () (everything trains).
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained', checkpoint=PATH,
            prefix='backbone.')`` for ImageNet weights. Defaults to None.

    Examples:
        >>> guidance = CATSegBackboneGuidance(dict(type='mmpretrain.ResNet', depth=18,
        ...                                        num_stages=3, strides=(1, 2, 2),
        ...                                        dilations=(1, 1, 1), out_indices=(0, 1, 2)),
        ...                                   clip_mean=(122.8, 116.7, 104.1),
        ...                                   clip_std=(68.5, 66.6, 70.3))
        >>> out = guidance(torch.zeros(1, 3, 384, 384), None)
        >>> out.spatial.shape, [g.shape for g in out.decoder]
        (torch.Size([1, 256, 24, 24]), [torch.Size([1, 128, 48, 48]), torch.Size([1, 64, 96, 96])])
    """

    def __init__(self,
                 backbone: ConfigType,
                 clip_mean: Sequence[float],
                 clip_std: Sequence[float],
                 img_size: int = 384,
                 mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD,
                 frozen: Sequence[str] = (),
                 init_cfg: OptConfigType = None):
        super().__init__(init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.img_size = (img_size, img_size)
        # x_backbone = x_clip * scale + shift: CLIP normalisation undone, ImageNet's applied.
        clip_mean, clip_std, mean, std = (torch.tensor(v).view(1, 3, 1, 1)
                                          for v in (clip_mean, clip_std, mean, std))
        self.register_buffer('scale', clip_std / std, persistent=False)
        self.register_buffer('shift', (clip_mean - mean) / std, persistent=False)
        self._freeze(frozen)

    @property
    def pad_value(self) -> Tensor:
        """Per-channel value (3,) in CLIP's normalisation that renormalises to 0: the padding of
        a whole image's guidance view (the official code pads the ImageNet-normalised image
        with zeros, fixture README §3)."""
        return (-self.shift / self.scale).flatten()

    def _freeze(self, patterns: Sequence[str]) -> None:
        if isinstance(patterns, str):
            raise TypeError(f'frozen must be a list of patterns, got the string {patterns!r}')
        names = [name for name, _ in self.backbone.named_parameters()]
        unmatched = [p for p in patterns if not any(fnmatchcase(n, p) for n in names)]
        if unmatched:
            raise ValueError(f'frozen patterns {unmatched} match no parameter of the guidance '
                             f'backbone {type(self.backbone).__name__}; its parameters look '
                             f'like {names[0] if names else "(none)"!r}')
        for name, param in self.backbone.named_parameters():
            if any(fnmatchcase(name, p) for p in patterns):
                param.requires_grad_(False)

    def forward(self, images: Tensor, clip_feats: 'CLIPImageFeatures') -> Guidance:
        """Guidance from CLIP-normalised views (B, 3, H_img, W_img).

        Returns:
            Guidance: ``spatial`` = the coarsest stage, ``decoder`` = the finer ones, coarse to
            fine (none when the backbone gives one stage).
        """
        x = images * self.scale + self.shift
        if tuple(x.shape[-2:]) != self.img_size:
            x = F.interpolate(x, size=self.img_size, mode='bilinear', align_corners=False)
        stages = tuple(self.backbone(x))
        if not stages:
            raise ValueError('the guidance backbone returned no stage; set its out_indices')
        # One stage only: no decoder guidance (the "no upsampling decoder" ablation).
        return Guidance(spatial=stages[-1], decoder=stages[-2::-1])
