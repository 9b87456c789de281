"""Embedding guidance (paper §3.3, Eq. 4; §3.4): the features that steer aggregation and decoding."""
from typing import TYPE_CHECKING, NamedTuple, Sequence, Tuple

from mmengine.model import BaseModule
from mmseg.registry import MODELS
from mmseg.utils import OptConfigType
from torch import Tensor, nn

if TYPE_CHECKING:  # annotation only: keeps Guidance importable without the CLIP modules
    from .clip_image_encoder import CLIPImageFeatures


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
        decoder = tuple(up(feat) for up, feat in zip(self.upsamplers, clip_feats.intermediates))
        return Guidance(spatial=clip_feats.dense, decoder=decoder)
