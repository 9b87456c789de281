"""Weights from outside: safe file loading, CLIP towers, and official CAT-Seg checkpoints.

Third-party files are data, never code: every load here is ``torch.load(weights_only=True)`` (or
safetensors), so a pickle that would run code is refused.
"""
import re
import urllib.parse
from pathlib import Path
from typing import Dict, Tuple, Union

import torch
from torch import Tensor, nn

from .checkpoint_v1 import is_v1_layout, split_v1_state_dict
from .download import download_checkpoint

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
# Official keys with no counterpart: CLIP's unused logit scale, and the Swin shift masks that the
# official code saves as buffers (we build them from the run-time grid).
OFFICIAL_DROPPED = (re.compile(r'^sem_seg_head\.predictor\.clip_model\.logit_scale$'),
                    re.compile(r'\.swin_block\.block_\d\.attn_mask$'))


def fetch_checkpoint(path_or_url: str) -> str:
    """A local path for a checkpoint given as a path or a URL (http(s)://, file://).

    URLs are downloaded once into torch hub's ``checkpoints`` directory (``$TORCH_HOME``), where
    mmengine keeps its downloads too, and reused afterwards (``weights.download_checkpoint``:
    with a timeout, all of the file or nothing).
    """
    if '://' not in path_or_url:
        return path_or_url
    name = Path(urllib.parse.urlparse(path_or_url).path).name
    if not name:
        raise ValueError(f'checkpoint URL {path_or_url!r} does not end with a file name')
    target = Path(torch.hub.get_dir()) / 'checkpoints' / name
    if not target.is_file():
        download_checkpoint(path_or_url, target)
    return str(target)


def load_weights_file(path: str) -> Dict[str, Tensor]:
    """A state dict from ``.pth``/``.pt``/``.bin`` (``weights_only=True``) or ``.safetensors``.

    Unwraps ``{'state_dict': ...}`` and ``{'model': ...}`` containers.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f'weights file {str(file)!r} does not exist')
    if file.suffix == '.safetensors':
        from safetensors.torch import load_file
        return load_file(str(file))
    try:
        data = torch.load(file, map_location='cpu', weights_only=True)
    except Exception as error:  # the unpickler raises many types; all mean "not plain weights"
        raise ValueError(f'{str(file)!r} is not a plain weights file and is refused: it may '
                         f'contain code (weights_only=True loading failed: {error})') from error
    for container in ('state_dict', 'model'):
        if isinstance(data, dict) and isinstance(data.get(container), dict):
            data = data[container]
    if not isinstance(data, dict):
        raise ValueError(f'{str(file)!r} holds a {type(data).__name__}, not a state dict')
    return data


ADDED_TO_CLIP = ('vpt_prompts',)


def load_clip_tower(module: nn.Module, path: str, tower: str) -> None:
    """Load one CLIP tower ('visual' or 'text') from a full-CLIP or single-tower state dict.

    Accepts open_clip/OpenAI keys (``visual.*`` for the image tower, top-level text keys) with a
    packed ``in_proj_weight`` (split on load) or already split q/k/v weights.
    """
    state_dict = load_weights_file(path)
    if tower == 'visual':
        if any(k.startswith('visual.') for k in state_dict):
            state_dict = {k[len('visual.'):]: v for k, v in state_dict.items()
                          if k.startswith('visual.')}
    else:
        state_dict = {k: v for k, v in state_dict.items()
                      if not k.startswith('visual.') and k not in ('logit_scale', 'logit_bias')}
    own = set(module.state_dict())
    packed = {k.replace('in_proj_weight', f'{p}_proj_weight') for k in state_dict
              if k.endswith('in_proj_weight') for p in 'qkv'}
    unexpected = sorted(k for k in state_dict if k not in own and not k.endswith('in_proj_weight'))
    # Parameters CAT-Seg adds to a tower (VPT prompts) start from their own initialisation.
    missing = sorted(k for k in own if k not in state_dict and k not in packed
                     and k not in ADDED_TO_CLIP)
    if unexpected or missing:
        raise ValueError(f'{path!r} does not match the CLIP {tower} tower of '
                         f'{type(module).__name__}: first unexpected key '
                         f'{unexpected[:1]}, first missing key {missing[:1]}')
    module.load_state_dict(state_dict, strict=not any(k in own for k in ADDED_TO_CLIP))


def convert_official_state_dict(state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Official CAT-Seg keys -> our segmentor's keys: the CVPR 2024 release layout, or the arXiv
    v1 layout (guidance backbone, fused CLIP attention; ``checkpoint_v1.py``), told by its keys.

    Raises:
        ValueError: On the first key that is neither mapped nor known to be unused.
    """
    converted = {}
    if is_v1_layout(state_dict):
        converted, state_dict = split_v1_state_dict(state_dict)
    for key, value in state_dict.items():
        if any(p.search(key) for p in OFFICIAL_DROPPED):
            continue
        new_key = _map_prefix(key)
        for pattern, replacement in OFFICIAL_HEAD_RENAMES:
            new_key = re.sub(pattern, replacement, new_key)
        converted[new_key] = value
    return converted


def _map_prefix(key: str) -> str:
    for old, new in OFFICIAL_PREFIXES:
        if key.startswith(old):
            return new + key[len(old):]
    raise ValueError(f'unexpected key {key!r} in the official CAT-Seg checkpoint: it is neither '
                     f'mapped nor known to be unused (see cat_seg/weights/checkpoint.py)')


def load_checkpoint_file(path_or_url: str) -> Dict[str, Tensor]:
    """``load_weights_file`` of a path or a URL (``fetch_checkpoint``).

    Raises:
        ValueError: A downloaded file that does not load; it is deleted, so that the next run
            downloads it again.
    """
    path = fetch_checkpoint(path_or_url)
    if path == path_or_url:
        return load_weights_file(path)
    try:
        return load_weights_file(path)
    except ValueError as error:
        Path(path).unlink(missing_ok=True)
        raise ValueError(f'the checkpoint downloaded from {path_or_url!r} does not load and was '
                         f'deleted ({path}), so the next run downloads it again: {error}') \
            from error


def is_official_state_dict(state_dict: Dict[str, Tensor]) -> bool:
    """Whether a state dict has the layout of the official (detectron2) CAT-Seg release: every
    official checkpoint has the predictor's ``sem_seg_head.`` keys."""
    return any(str(key).startswith(OFFICIAL_KEY_PREFIX) for key in state_dict)


def check_state_dict_fits(model: nn.Module, state_dict: Dict[str, Tensor], problem: str,
                          advice: str) -> None:
    """Refuse a state dict that would not load strictly into ``model``.

    Args:
        model (nn.Module): The model to load into.
        state_dict (dict): Keys of the model (converted already, if official).
        problem (str): Start of the message, e.g. "checkpoint 'x.pth' does not match the config".
        advice (str): End of the message: which config the checkpoint needs.

    Raises:
        ValueError: ``<problem>: N missing keys [...], N unexpected keys [...], N keys of another
            shape [...]; <advice>``.
    """
    own = model.state_dict()
    missing = sorted(own.keys() - state_dict.keys())
    unexpected = sorted(state_dict.keys() - own.keys())
    reshaped = sorted(key for key in own.keys() & state_dict.keys()
                      if own[key].shape != state_dict[key].shape)
    if missing or unexpected or reshaped:
        raise ValueError(f'{problem}: {len(missing)} missing keys {missing[:3]}, '
                         f'{len(unexpected)} unexpected keys {unexpected[:3]}, {len(reshaped)} '
                         f'keys of another shape {reshaped[:3]}; {advice}')


def load_checkpoint_into(model: nn.Module, checkpoint: Union[str, Dict[str, Tensor]]) -> None:
    """Load our checkpoint, or an official CAT-Seg one (converted on the fly), strictly.

    Args:
        model (nn.Module): The segmentor built from the config.
        checkpoint (str | dict): A path, a URL (``load_checkpoint_file``), or a state dict.

    Raises:
        ValueError: Naming the keys that do not match the model, and the checkpoint.
    """
    state_dict = checkpoint if isinstance(checkpoint, dict) else load_checkpoint_file(checkpoint)
    if is_official_state_dict(state_dict):
        state_dict = convert_official_state_dict(state_dict)
    name = 'state dict' if isinstance(checkpoint, dict) else repr(checkpoint)
    check_state_dict_fits(model, state_dict, f'checkpoint {name} does not match the config',
                          'use the config the checkpoint was trained with')
    model.load_state_dict(state_dict)
