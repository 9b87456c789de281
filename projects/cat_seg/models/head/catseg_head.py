"""CAT-Seg decode head: cost volume -> N_B x (spatial, class aggregation) -> upsampling decoder."""
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from mmseg.utils import ConfigType
from torch import Tensor, nn

from .class_aggregation import ATTENTION_TYPES, ClassAggregation
from .cost_volume import (ClassLogits, CostEmbedding, cosine_cost, gather_classes,
                          select_classes)
from ..checkpointing import checkpointed
from ..execution import PLAIN_PLAN, ExecutionPlan, class_chunks, concat_classes, map_chunks
from .guidance import Guidance
from .guided_linear import GuidedLinear
from .spatial_aggregation import SpatialAggregation
from .upsampling_decoder import UpsamplingDecoder

# Logit of the classes the release drops when the vocabulary exceeds pad_len (official model.py
# Aggregator.forward; fixture README §11): sigmoid(-100) is 0 for every practical purpose.
DROPPED_CLASS_LOGIT = -100.0


class CATSegHeadInputs(NamedTuple):
    """What the head aggregates.

    Attributes:
        image_feats (Tensor): Dense CLIP features, (B, C, H, W).
        text_embeds (Tensor): Class embeddings, (B, T, P, C).
        guidance (Guidance): Spatial (B, C_v, H, W) and decoder guidance, coarse to fine.
    """

    image_feats: Tensor
    text_embeds: Tensor
    guidance: Guidance


# What one aggregation layer does (paper Fig. 3; v1 Table 2 ablations): 'spatial' Swin blocks per
# class, 'class' linear attention across classes per pixel, 'joint' a plain linear-attention
# transformer over all pixel-class tokens together (no guidance, no padding).
LAYER_TYPES = ('spatial', 'class', 'joint')


class AggregatorLayer(nn.Module):
    """One of the N_B layers: by default spatial then class aggregation (paper Fig. 3)."""

    def __init__(self, embed_dims: int, spatial_guidance: int, text_guidance: int,
                 num_heads: int, window_size: int, mlp_ratio: float, pad_len: int,
                 layer_types: Sequence[str] = ('spatial', 'class'),
                 attention_type: str = 'linear'):
        super().__init__()
        self.spatial_agg = (SpatialAggregation(embed_dims, spatial_guidance, num_heads,
                                               window_size, mlp_ratio)
                            if 'spatial' in layer_types else None)
        self.class_agg = (ClassAggregation(embed_dims, text_guidance, num_heads, pad_len,
                                           mlp_ratio, attention_type)
                          if 'class' in layer_types else None)
        self.joint_agg = (ClassAggregation(embed_dims, 0, num_heads, 0, mlp_ratio)
                          if 'joint' in layer_types else None)

    def forward(self, x: Tensor, spatial_guidance: Optional[Tensor],
                text_guidance: Optional[Tensor], pool_size: Tuple[int, int],
                chunks: Optional[Sequence[slice]] = None, class_step: Optional[int] = None,
                plan: ExecutionPlan = PLAIN_PLAN) -> Tensor:
        """(B, T, H, W, C) -> (B, T, H, W, C), guidance (B, H, W, C_s) and (B, T, C_t).

        ``chunks`` of classes (None: all at once) and ``class_step`` pixels of class
        aggregation at a time (None: all) bound memory for long vocabularies.
        """
        chunks = chunks or class_chunks(x.shape[1])
        in_place = plan.in_place(x)   # x is the head's own buffer
        if self.spatial_agg is not None:
            x = map_chunks(x, chunks, lambda t: self.spatial_agg(t, spatial_guidance, plan),
                           in_place)
        if self.class_agg is not None:
            x = self.class_agg(x, text_guidance, pool_size, class_step, plan, in_place)
        if self.joint_agg is not None:
            x = self._joint(x)
        return x

    def _joint(self, x: Tensor) -> Tensor:
        """Every (class, pixel) token as one element of a single sequence."""
        tokens = x.flatten(1, 3)[:, :, None, None]                        # (B, T*H*W, 1, 1, C)
        return self.joint_agg(tokens, None, (1, 1)).view(x.shape)


@MODELS.register_module()
class CATSegHead(BaseDecodeHead):
    """Cost aggregation head of CAT-Seg (Cho et al., CVPR 2024, §3.2-3.4).

    Call graph (as ``BaseDecodeHead``)::

        loss():    forward() -> loss_by_feat()   (logits resized to the label, CATSegBCELoss)
        forward(): cosine_cost() -> [select_classes()] -> CostEmbedding
                   -> N_B x AggregatorLayer(SpatialAggregation, ClassAggregation)
                   -> UpsamplingDecoder -> [scatter_classes()]
        kept_logits(): forward() without the scatter: the kept classes and their indices

    The vocabulary is data: ``num_classes`` only satisfies ``BaseDecodeHead``; any T works.
    ``forward(inputs, plan)`` takes an ``ExecutionPlan``: the plain plan (default) runs the
    paper's operations on every class at once, the cpu plan the same function in cache-sized
    class chunks with fused kernels; ``CATSeg`` picks one per call.

    Args:
        embed_dims (int): d_F, cost embedding width. Defaults to 128.
        num_heads (int): Heads of both aggregations. Defaults to 4.
        num_layers (int): N_B. Defaults to 2.
        window_size (int): Swin window side. Defaults to 12.
        mlp_ratio (float): MLP width ratio of both aggregations. Defaults to 4.
        num_prompts (int): P, templates per class. Defaults to 1.
        text_guidance_channels (int): Text embedding channels (0: no text guidance).
        spatial_guidance_channels (int): Spatial guidance channels (0: none).
        guidance_proj_channels (int): Projected text and spatial guidance. Defaults to 128.
        text_guidance_proj_channels (int, optional): Projected text guidance (official
            TEXT_GUIDANCE_PROJ_DIM), if not ``guidance_proj_channels``. Defaults to None.
        spatial_guidance_proj_channels (int, optional): Projected spatial guidance (official
            APPEARANCE_GUIDANCE_PROJ_DIM), if not ``guidance_proj_channels``. Defaults to None.
        decoder_channels (Sequence[int]): Stage widths, N_U = len. Defaults to (64, 32).
        decoder_guidance_channels (Sequence[int]): Decoder guidance inputs. Defaults to (256, 128).
        decoder_guidance_proj_channels (Sequence[int]): Projected. Defaults to (32, 16).
        pad_len (int): Class axis length of class aggregation: shorter vocabularies are padded,
            longer ones keep the ``pad_len`` classes of highest cost per image, the others get
            ``DROPPED_CLASS_LOGIT`` (release). 0 disables both. Defaults to 256.
        keep_all_classes (bool): Never drop classes: vocabularies longer than ``pad_len`` are
            aggregated whole (exact; the release's cut stays the default for parity).
        attention_type (str): Class aggregation's attention, from ``ATTENTION_TYPES``: 'linear'
            (paper) or 'full' (softmax; official ATTENTION_TYPE). Defaults to 'linear'.
        layer_types (Sequence[str]): Which aggregations each layer runs, from ``LAYER_TYPES``;
            they always run in that order. Defaults to ('spatial', 'class'); the v1 ablations
            use ('spatial',) and ('joint',).
        aggregate (str): 'cost' (CAT-Seg) or 'features': the feature-aggregation baseline of
            v1 Tables 2 and 7, whose tokens are a linear embedding of the concatenated image
            feature and class text embedding instead of the cost slices. Defaults to 'cost'.
        embedding_channels (int): Width of CLIP's joint embedding, the input of the
            'features' embedding. Defaults to 512.
        detach_cost (bool): Stop the gradient at the cost volume, so CLIP learns only through
            the guidance (v1 Table 4). Defaults to False.
        class_chunk_size (int | str, optional): Classes processed at a time by the per-class
            stages, bounding memory for large vocabularies with the same result; class
            aggregation takes as many classes' worth of pixels per step. None: all at once.
            'auto' (default): the plan's byte budgets where it has them (``ExecutionPlan``:
            MLP hidden layer within ``class_chunk_bytes``, decoder maps within
            ``decoder_chunk_bytes``, class aggregation at ``class_step_tokens`` tokens), else,
            when a vocabulary is longer than ``pad_len`` (``keep_all_classes``), ``pad_len``
            class-views at a time (``pad_len // B`` classes of B views): the memory of the
            release's one image at ``pad_len`` classes, whatever T.
        train_pool_size (tuple[int, int]): Class-aggregation pooling in training. Defaults to
            (2, 2) (official POOLING_SIZES).
        test_pool_size (tuple[int, int]): Pooling at evaluation. Defaults to (1, 1) (eval.sh).
        with_cp (bool): Activation checkpointing of each aggregation layer and decoder stage in
            training (mmseg's ``with_cp``): recomputed in the backward pass, same gradients.
            Defaults to False.
        loss_decode (dict): Defaults to ``CATSegBCELoss``.
    """

    def __init__(self,
                 embed_dims: int = 128,
                 num_heads: int = 4,
                 num_layers: int = 2,
                 window_size: int = 12,
                 mlp_ratio: float = 4.0,
                 num_prompts: int = 1,
                 text_guidance_channels: int = 512,
                 spatial_guidance_channels: int = 512,
                 guidance_proj_channels: int = 128,
                 text_guidance_proj_channels: Optional[int] = None,
                 spatial_guidance_proj_channels: Optional[int] = None,
                 decoder_channels: Sequence[int] = (64, 32),
                 decoder_guidance_channels: Sequence[int] = (256, 128),
                 decoder_guidance_proj_channels: Sequence[int] = (32, 16),
                 pad_len: int = 256,
                 attention_type: str = 'linear',
                 layer_types: Sequence[str] = ('spatial', 'class'),
                 aggregate: str = 'cost',
                 embedding_channels: int = 512,
                 detach_cost: bool = False,
                 keep_all_classes: bool = False,
                 class_chunk_size: Union[int, str, None] = 'auto',
                 train_pool_size: Tuple[int, int] = (2, 2),
                 test_pool_size: Tuple[int, int] = (1, 1),
                 with_cp: bool = False,
                 loss_decode: ConfigType = dict(type='CATSegBCELoss'),
                 init_cfg=None,
                 **kwargs):
        super().__init__(in_channels=embed_dims, channels=embed_dims, loss_decode=loss_decode,
                         init_cfg=init_cfg, **kwargs)
        del self.conv_seg  # one logit per class comes from the decoder, for any vocabulary
        if embed_dims % num_heads:
            raise ValueError(f'num_heads={num_heads} must divide embed_dims={embed_dims}')
        for name, size in (('train_pool_size', train_pool_size),
                           ('test_pool_size', test_pool_size)):
            if len(size) != 2 or min(size) < 1:
                raise ValueError(f'{name}={size!r} must be two positive ints (pool H, pool W)')
        if class_chunk_size not in (None, 'auto') and (
                not isinstance(class_chunk_size, int) or class_chunk_size < 1):
            raise ValueError(f'class_chunk_size={class_chunk_size!r} must be None, \'auto\' or '
                             'an int of at least 1')
        if not layer_types or any(t not in LAYER_TYPES for t in layer_types):
            raise ValueError(f'layer_types={tuple(layer_types)!r} must be a non-empty sequence '
                             f'of {list(LAYER_TYPES)}')
        if aggregate not in ('cost', 'features'):
            raise ValueError(f"aggregate={aggregate!r} is not one of ['cost', 'features']")
        self.detach_cost = detach_cost
        self.mlp_ratio = mlp_ratio
        self.pad_len, self.keep_all_classes = pad_len, keep_all_classes
        self.class_chunk_size = class_chunk_size
        self.train_pool_size, self.test_pool_size = tuple(train_pool_size), tuple(test_pool_size)
        if attention_type not in ATTENTION_TYPES:
            raise ValueError(f'attention_type={attention_type!r} is not one of '
                             f'{list(ATTENTION_TYPES)}')
        text_proj, spatial_proj = (guidance_proj_channels if proj is None else proj
                                   for proj in (text_guidance_proj_channels,
                                                spatial_guidance_proj_channels))
        text_proj = text_proj if text_guidance_channels else 0
        spatial_proj = spatial_proj if spatial_guidance_channels else 0

        self.cost_embed = CostEmbedding(num_prompts, embed_dims)
        # The feature-aggregation baseline: Linear(concat(image feature, text embedding)).
        self.feature_embed = (GuidedLinear(embedding_channels, embedding_channels, embed_dims)
                              if aggregate == 'features' else None)
        self.spatial_guidance_proj = (
            ConvModule(spatial_guidance_channels, spatial_proj, 3, padding=1, norm_cfg=None,
                       act_cfg=dict(type='ReLU')) if spatial_proj else None)
        self.text_guidance_proj = (
            nn.Sequential(nn.Linear(text_guidance_channels, text_proj), nn.ReLU())
            if text_proj else None)
        self.layers = nn.ModuleList(
            AggregatorLayer(embed_dims, spatial_proj, text_proj, num_heads, window_size,
                            mlp_ratio, pad_len, layer_types, attention_type)
            for _ in range(num_layers))
        self.with_cp = with_cp
        self.decoder = UpsamplingDecoder(embed_dims, decoder_channels, decoder_guidance_channels,
                                         decoder_guidance_proj_channels, with_cp=with_cp)

    def _embed_features(self, image_feats: Tensor, text_embeds: Tensor) -> Tensor:
        """Feature-aggregation tokens (B, t, H, W, C) of image features (B, C_f, H, W) and
        class embeddings (B, t, P, C_f): the image term broadcast over classes and vice versa."""
        image = F.normalize(image_feats, dim=1).permute(0, 2, 3, 1)[:, None]  # (B, 1, H, W, C)
        text = F.normalize(text_embeds.mean(dim=2), dim=-1)[:, :, None, None]  # (B, t, 1, 1, C)
        return self.feature_embed(image, text)

    def _class_chunk(self, plan: ExecutionPlan, cost_shape, decoder: bool = False) -> int:
        """Classes per chunk for a cost volume (B, P, T, H, W), of the decoder if ``decoder``."""
        batch, _, classes, height, width = cost_shape
        if plan.any_class_count:   # one chunk of the traced T: no loop bound read from it
            return classes
        size = self.class_chunk_size
        budget = plan.decoder_chunk_bytes if decoder else plan.class_chunk_bytes
        if size == 'auto' and budget is not None:
            if decoder:   # a last-stage map: 2**N_U times the grid, cls_conv's input channels
                per_pixel = 4 ** len(self.decoder.stages) * self.decoder.cls_conv.in_channels
            else:         # the MLP's hidden layer
                per_pixel = self.channels * self.mlp_ratio
            size = max(1, int(budget // (batch * height * width * per_pixel * 4)))
        elif size == 'auto' and self.pad_len and classes > self.pad_len:
            size = max(1, self.pad_len // batch)   # the release's pad_len classes of one image
        elif size == 'auto':
            size = None
        return classes if size is None else min(size, classes)

    def _class_step(self, plan: ExecutionPlan, shape, pool_size, chunk: int) -> Optional[int]:
        """Pixels per class-aggregation step for a cost embedding of ``shape`` (B, T, H, W, C)
        in class chunks of ``chunk``: the plan's ``class_step_tokens`` tokens in 'auto' mode,
        else a chunk's worth of tokens; None (all pixels) when the classes are not chunked."""
        batch, classes, height, width = shape[:4]
        if plan.any_class_count:   # chunk is the traced T: comparing it would fix T
            return None
        pixels = (height // pool_size[0]) * (width // pool_size[1])
        if self.class_chunk_size == 'auto' and plan.class_step_tokens is not None:
            tokens = plan.class_step_tokens
        elif chunk < classes:
            tokens = chunk * batch * pixels
        else:
            return None
        return max(1, tokens // (batch * classes))

    def forward(self, inputs: CATSegHeadInputs, plan: ExecutionPlan = PLAIN_PLAN,
                kept: bool = False) -> Union[Tensor, ClassLogits]:
        """Per-class logits, (B, T, H * 2**N_U, W * 2**N_U), with ``DROPPED_CLASS_LOGIT`` for
        the classes dropped beyond ``pad_len``; with ``kept``, :meth:`kept_logits` instead.
        Callers go through ``__call__`` so hooks and ``model.compile`` see every call."""
        logits = self.kept_logits(inputs, plan)
        return logits if kept else logits.dense()

    def kept_logits(self, inputs: CATSegHeadInputs,
                    plan: ExecutionPlan = PLAIN_PLAN) -> ClassLogits:
        """Logits of the classes aggregated: all, or the ``pad_len`` kept per image.

        Args:
            inputs (CATSegHeadInputs): Image features, text embeddings (B, T, P, C), guidance.
            plan (ExecutionPlan): How to run it (``execution.py``). Defaults to the plain plan.

        Returns:
            ClassLogits: (B, K, H * 2**N_U, W * 2**N_U) and the kept classes (B, K), or None
            when K = T.
        """
        image_feats, text_embeds, guidance = inputs
        cost = cosine_cost(image_feats, text_embeds)
        num_classes = text_embeds.shape[1]
        kept = None
        if self.pad_len and not self.keep_all_classes and (plan.any_class_count
                                                           or num_classes > self.pad_len):
            # min(T, pad_len) as a tensor: the traced size, so that the graph's TopK follows T.
            kept = select_classes(cost, torch.as_tensor(num_classes).clamp(max=self.pad_len)
                                  if plan.any_class_count else self.pad_len)
            text_embeds = F.normalize(gather_classes(text_embeds, kept), dim=-1)
            cost = cosine_cost(image_feats, text_embeds)
        if self.detach_cost:
            cost = cost.detach()
        spatial = None
        if self.spatial_guidance_proj is not None:
            spatial = self.spatial_guidance_proj(guidance.spatial).permute(0, 2, 3, 1)
        text = None
        if self.text_guidance_proj is not None:
            text = self.text_guidance_proj(F.normalize(text_embeds.mean(dim=2), dim=-1))
        pool_size = self.train_pool_size if self.training else self.test_pool_size
        chunk = self._class_chunk(plan, cost.shape)
        chunks = class_chunks(cost.shape[2], chunk)
        x = concat_classes([self._embed(cost, image_feats, text_embeds, c) for c in chunks])
        class_step = self._class_step(plan, x.shape, pool_size, chunk)
        for layer in self.layers:                                          # (B, T, H, W, C)
            x = checkpointed(self.with_cp and self.training, layer, x, spatial, text, pool_size,
                             chunks, class_step, plan)
        logits = self.decoder(x, guidance.decoder, plan,
                              self._class_chunk(plan, cost.shape, decoder=True))
        return ClassLogits(logits, kept, DROPPED_CLASS_LOGIT, num_classes)

    def _embed(self, cost: Tensor, image_feats: Tensor, text_embeds: Tensor,
               chunk: slice = slice(None)) -> Tensor:
        """Tokens (B, t, H, W, C) of classes ``chunk``: the cost embedding, or the feature
        embedding of the 'features' baseline."""
        if self.feature_embed is None:
            return self.cost_embed(cost[:, :, chunk])
        return self._embed_features(image_feats, text_embeds[:, chunk])
