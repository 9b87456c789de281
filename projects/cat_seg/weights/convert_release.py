"""Official CAT-Seg checkpoints (detectron2 keys) as our segmentor's state dict: the CVPR 2024
release layout here, the arXiv v1 layout first brought to it by ``convert_v1.py``."""
import re
from typing import Dict, Tuple

from torch import Tensor

from .convert_v1 import is_v1_layout, split_v1_state_dict

# Official (detectron2) key prefix -> our segmentor prefix; the rest of each key is kept.
# CLIP keys are OpenAI's (split q/k/v in the official files, which our encoders also use).
OFFICIAL_KEY_PREFIX = 'sem_seg_head.'
_CLIP = OFFICIAL_KEY_PREFIX + 'predictor.clip_model.'
OFFICIAL_PREFIXES: Tuple[Tuple[str, str], ...] = (
    (_CLIP + 'visual.', 'backbone.'),
    (_CLIP + 'token_embedding.', 'text_encoder.token_embedding.'),
    (_CLIP + 'positional_embedding', 'text_encoder.positional_embedding'),
    (_CLIP + 'transformer.', 'text_encoder.transformer.'),
    (_CLIP + 'ln_final.', 'text_encoder.ln_final.'),
    (_CLIP + 'text_projection', 'text_encoder.text_projection'),
    ('upsample1.', 'guidance.upsamplers.0.'),
    ('upsample2.', 'guidance.upsamplers.1.'),
    ('sem_seg_head.predictor.transformer.', 'decode_head.'),
)
# Renames inside the decode head (official model.py module paths -> ours), applied in order.
OFFICIAL_HEAD_RENAMES: Tuple[Tuple[str, str], ...] = (
    (r'^decode_head\.conv1\.', 'decode_head.cost_embed.conv.'),
    (r'^decode_head\.guidance_projection\.0\.', 'decode_head.spatial_guidance_proj.conv.'),
    (r'^decode_head\.text_guidance_projection\.0\.', 'decode_head.text_guidance_proj.0.'),
    (r'^decode_head\.decoder_guidance_projection\.(\d+)\.0\.',
     r'decode_head.decoder.guidance_projs.\1.conv.'),
    (r'^decode_head\.layers\.(\d+)\.swin_block\.block_(\d)\.',
     lambda m: f'decode_head.layers.{m[1]}.spatial_agg.blocks.{int(m[2]) - 1}.'),
    (r'^decode_head\.layers\.(\d+)\.swin_block\.guidance_norm\.',
     r'decode_head.layers.\1.spatial_agg.guidance_norm.'),
    (r'^decode_head\.layers\.(\d+)\.attention\.attention\.', r'decode_head.layers.\1.class_agg.attn.'),
    (r'^decode_head\.layers\.(\d+)\.attention\.MLP\.(\d)\.', r'decode_head.layers.\1.class_agg.mlp.\2.'),
    (r'^decode_head\.layers\.(\d+)\.attention\.', r'decode_head.layers.\1.class_agg.'),
    (r'^decode_head\.decoder(\d)\.up\.',
     lambda m: f'decode_head.decoder.stages.{int(m[1]) - 1}.up.'),
    (r'^decode_head\.decoder(\d)\.conv\.double_conv\.',
     lambda m: f'decode_head.decoder.stages.{int(m[1]) - 1}.convs.'),
    (r'^decode_head\.head\.', 'decode_head.decoder.cls_conv.'),
)
# The VPT prompts of the CLIP image encoder (official PROMPT_DEPTH x PROMPT_LENGTH x width).
OFFICIAL_CLIP_RENAMES: Tuple[Tuple[str, str], ...] = (
    (r'^backbone\.transformer\.prompt_tokens$', 'backbone.vpt_prompts'),
)
# Official keys with no counterpart: CLIP's unused logit scale; the Swin shift masks that the
# official code saves as buffers (we build them from the run-time grid); the decoder guidance
# projections it builds for DECODER_GUIDANCE_DIMS entries after the two it decodes with.
OFFICIAL_DROPPED = (re.compile(r'^sem_seg_head\.predictor\.clip_model\.logit_scale$'),
                    re.compile(r'\.swin_block\.block_\d\.attn_mask$'),
                    re.compile(r'\.decoder_guidance_projection\.([2-9]|\d\d+)\.'))
_VISUAL_BLOCK = re.compile(re.escape(_CLIP) + r'visual\.transformer\.resblocks\.(\d+)\.')
# Official checkpoints we cannot reproduce: (key pattern, whether the tensor shows the setting,
# the official setting and why) (docs/parity.md, "Official config keys").
UNSUPPORTED_SETTINGS = (
    (re.compile(r'clip_model\.visual\.transformer\.prompt_tokens$'), lambda t: t.shape[0] == 0,
     'PROMPT_LENGTH > 0 with PROMPT_DEPTH 0, whose blocks drop patch tokens in place of prompts'),
    (re.compile(r'clip_model\.visual\.attnpool\.'), lambda t: True,
     "a ResNet CLIP_PRETRAINED ('RN50', 'RN101', ...), which has no dense features"),
)


def convert_official_state_dict(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Official CAT-Seg keys -> our segmentor's keys: the CVPR 2024 release layout, or the arXiv
    v1 layout (guidance backbone, fused CLIP attention; ``convert_v1.py``), told by its keys.

    Tensors without elements (a projection of width 0) hold nothing and are left out; prompt
    rows past the last CLIP block are never read by the official loop and are cut.

    Raises:
        ValueError: On the first key that is neither mapped nor known to be unused, or that
            shows an official setting we do not support (naming it).
    """
    _check_supported(state_dict)
    converted = {}
    if is_v1_layout(state_dict):
        converted, state_dict = split_v1_state_dict(state_dict)
    blocks = len({m[1] for m in map(_VISUAL_BLOCK.match, state_dict) if m})
    for key, value in state_dict.items():
        if any(p.search(key) for p in OFFICIAL_DROPPED) or value.numel() == 0:
            continue
        new_key = _map_prefix(key)
        for pattern, replacement in OFFICIAL_HEAD_RENAMES + OFFICIAL_CLIP_RENAMES:
            new_key = re.sub(pattern, replacement, new_key)
        converted[new_key] = value[:blocks] if new_key == 'backbone.vpt_prompts' else value
    return converted


def _check_supported(state_dict: Dict[str, Tensor]) -> None:
    for key, value in state_dict.items():
        for pattern, shows_it, setting in UNSUPPORTED_SETTINGS:
            if pattern.search(key) and shows_it(value):
                raise ValueError(f'the official checkpoint was trained with {setting}; this is '
                                 f'not supported (key {key!r}; see docs/parity.md, "Official '
                                 'config keys")')


def _map_prefix(key: str) -> str:
    for old, new in OFFICIAL_PREFIXES:
        if key.startswith(old):
            return new + key[len(old):]
    raise ValueError(f'unexpected key {key!r} in the official CAT-Seg checkpoint: it is neither '
                     f'mapped nor known to be unused (see cat_seg/weights/convert_release.py)')


def is_official_state_dict(state_dict: Dict[str, Tensor]) -> bool:
    """Whether a state dict has the layout of the official (detectron2) CAT-Seg release: every
    official checkpoint has the predictor's ``sem_seg_head.`` keys."""
    return any(str(key).startswith(OFFICIAL_KEY_PREFIX) for key in state_dict)
