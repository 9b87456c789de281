"""Official arXiv-v1 CAT-Seg checkpoints (KU-CVLAB/CAT-Seg @ ceaaad8, ``model_final_*.pth``).

They differ from the release layout in two places (v1 fixture README "State-dict keys"):

- ``backbone.*`` is a separate guidance backbone: detectron2's ResNet (``stem``, ``res2``-``res4``,
  FrozenBN statistics as buffers) or the repository's D2SwinTransformer (``patch_embed``,
  ``layers``, ``norm0``-``norm2``). Its keys map onto mmpretrain's ``ResNet`` (norms
  ``CATSegFrozenBatchNorm2d``) and ``SwinTransformer`` under ``guidance.backbone.``;
- CLIP attention keeps the fused ``attn.in_proj_weight`` (rows q, k, v), which is split into the
  release's ``q_proj_weight`` / ``k_proj_weight`` / ``v_proj_weight``.

Everything else (CLIP towers, aggregator) has the release's keys; ``convert_release.py`` maps them.
"""
import re
from typing import Callable, Dict, Optional, Tuple, Union

from torch import Tensor

from ..models.clip.attention import split_packed_qkv

Replacement = Union[str, Callable[[re.Match], str]]

GUIDANCE_PREFIX = 'guidance.backbone.'
_FROZEN_BN = r'(weight|bias|running_mean|running_var)'


def _layer(m: re.Match) -> str:
    """detectron2 counts stages from ``res2``, mmpretrain from ``layer1``."""
    return f'layer{int(m[1]) - 1}.{m[2]}'


# detectron2 ResNet (build_resnet_backbone; STRIDE_IN_1X1 False is mmpretrain's style 'pytorch').
RESNET_KEYS: Tuple[Tuple[str, Replacement], ...] = (
    (r'^stem\.conv1\.weight$', 'conv1.weight'),
    (rf'^stem\.conv1\.norm\.{_FROZEN_BN}$', r'bn1.\1'),
    (r'^res(\d)\.(\d+)\.conv(\d)\.weight$', lambda m: f'{_layer(m)}.conv{m[3]}.weight'),
    (rf'^res(\d)\.(\d+)\.conv(\d)\.norm\.{_FROZEN_BN}$', lambda m: f'{_layer(m)}.bn{m[3]}.{m[4]}'),
    (r'^res(\d)\.(\d+)\.shortcut\.weight$', lambda m: f'{_layer(m)}.downsample.0.weight'),
    (rf'^res(\d)\.(\d+)\.shortcut\.norm\.{_FROZEN_BN}$',
     lambda m: f'{_layer(m)}.downsample.1.{m[3]}'),
)

# D2SwinTransformer (a copy of the original Swin code) -> mmpretrain SwinTransformer.
_BLOCK = r'^layers\.(\d+)\.blocks\.(\d+)\.'
SWIN_KEYS: Tuple[Tuple[str, Replacement], ...] = (
    (r'^patch_embed\.proj\.(weight|bias)$', r'patch_embed.projection.\1'),
    (r'^patch_embed\.norm\.(weight|bias)$', r'patch_embed.norm.\1'),
    (_BLOCK + r'(norm1|norm2)\.(weight|bias)$', r'stages.\1.blocks.\2.\3.\4'),
    (_BLOCK + r'attn\.(qkv|proj)\.(weight|bias)$', r'stages.\1.blocks.\2.attn.w_msa.\3.\4'),
    (_BLOCK + r'attn\.(relative_position_bias_table|relative_position_index)$',
     r'stages.\1.blocks.\2.attn.w_msa.\3'),
    (_BLOCK + r'mlp\.fc1\.(weight|bias)$', r'stages.\1.blocks.\2.ffn.layers.0.0.\3'),
    (_BLOCK + r'mlp\.fc2\.(weight|bias)$', r'stages.\1.blocks.\2.ffn.layers.1.\3'),
    (r'^layers\.(\d+)\.downsample\.reduction\.weight$', r'stages.\1.downsample.reduction.weight'),
    (r'^layers\.(\d+)\.downsample\.norm\.(weight|bias)$', r'stages.\1.downsample.norm.\2'),
    (r'^norm(\d+)\.(weight|bias)$', r'norm\1.\2'),
    (r'^absolute_pos_embed$', 'absolute_pos_embed'),
)
# Patch merging: mmpretrain gathers the 2x2 neighbours in another channel order.
SWIN_MERGING = re.compile(r'^stages\.\d+\.downsample\.')

# Official detectron2 prefix of the guidance backbone, and of the CLIP model's fused attention.
BACKBONE_PREFIX = 'backbone.'
FUSED_ATTENTION = re.compile(r'^sem_seg_head\.predictor\.clip_model\..*\.attn\.in_proj_weight$')


def is_v1_layout(state_dict: Dict[str, Tensor]) -> bool:
    """Whether an official checkpoint has the v1 layout: a guidance backbone or fused attention."""
    return any(k.startswith(BACKBONE_PREFIX) or FUSED_ATTENTION.match(k) for k in state_dict)


def split_v1_state_dict(
        state_dict: Dict[str, Tensor]) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
    """Separate a v1 checkpoint into our guidance-backbone keys and release-layout official keys.

    Returns:
        tuple[dict, dict]: ``guidance.backbone.*`` tensors in mmpretrain's layout, and every
        other official tensor, with fused CLIP attention split into q/k/v (release names).

    Raises:
        ValueError: On the first backbone key that is neither ResNet's nor Swin's.
    """
    guidance, rest = {}, {}
    backbone_keys = [k[len(BACKBONE_PREFIX):] for k in state_dict if k.startswith(BACKBONE_PREFIX)]
    table = _backbone_table(backbone_keys)
    for key, value in state_dict.items():
        if key.startswith(BACKBONE_PREFIX):
            name, value = _map_backbone_key(key[len(BACKBONE_PREFIX):], value, table)
            guidance[GUIDANCE_PREFIX + name] = value
        elif FUSED_ATTENTION.match(key):
            rest.update(split_packed_qkv(key, value))
        else:
            rest[key] = value
    return guidance, rest


def _backbone_table(keys) -> Optional[Tuple[Tuple[str, str], ...]]:
    """The key table of the backbone these (unprefixed) keys come from, None without keys."""
    if not keys:
        return None
    for table in (RESNET_KEYS, SWIN_KEYS):
        if any(re.match(pattern, keys[0]) for pattern, _ in table):
            return table
    raise ValueError(f'unexpected key {BACKBONE_PREFIX + keys[0]!r} in the official v1 CAT-Seg '
                     'checkpoint: the guidance backbone is neither detectron2\'s ResNet nor '
                     'D2SwinTransformer (see cat_seg/weights/convert_v1.py)')


def _map_backbone_key(key: str, value: Tensor, table) -> Tuple[str, Tensor]:
    for pattern, replacement in table:
        if re.match(pattern, key):
            name = re.sub(pattern, replacement, key)
            if table is SWIN_KEYS and SWIN_MERGING.match(name):
                value = unfold_channel_order(value)
            if table is SWIN_KEYS and name == 'absolute_pos_embed':   # MODEL.SWIN.APE
                value = value.flatten(2).transpose(1, 2)   # (1, C, H, W) -> (1, H*W, C)
            return name, value
    raise ValueError(f'unexpected key {BACKBONE_PREFIX + key!r} in the official v1 CAT-Seg '
                     'checkpoint: it is neither mapped nor known to be unused (see '
                     'cat_seg/weights/convert_v1.py)')


def unfold_channel_order(value: Tensor) -> Tensor:
    """Patch-merging weights from Swin's concatenation order to mmpretrain's ``nn.Unfold`` order.

    Swin concatenates the 2x2 neighbours as [(0, 0), (1, 0), (0, 1), (1, 1)] (row, column), each
    a block of C channels; ``nn.Unfold`` gives channel-major features, neighbours row-major.
    Works on the reduction weight (C_out, 4C) and on the norm's weight and bias (4C,).
    """
    channels = value.shape[-1] // 4
    # (..., column, row, C) -> (..., C, row, column)
    blocks = value.reshape(*value.shape[:-1], 2, 2, channels)
    return blocks.movedim(-1, -3).transpose(-1, -2).reshape(value.shape)
