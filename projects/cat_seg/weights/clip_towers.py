"""OpenAI / open_clip CLIP weights as the state dict of one of our CLIP towers."""
from typing import Dict

from torch import Tensor, nn

from ..models.clip.attention import PACKED_WEIGHT, split_packed_qkv

# Parameters CAT-Seg adds to a tower (VPT prompts): they start from their own initialisation.
ADDED_TO_CLIP = ('vpt_prompts',)


def clip_tower_state_dict(state_dict: Dict[str, Tensor], tower: str) -> Dict[str, Tensor]:
    """The keys of one tower ('visual' or 'text') of a full-CLIP or single-tower state dict, with
    packed ``in_proj_weight`` split into q/k/v (``split_packed_qkv``)."""
    if tower == 'visual':
        if any(k.startswith('visual.') for k in state_dict):
            state_dict = {k[len('visual.'):]: v for k, v in state_dict.items()
                          if k.startswith('visual.')}
    else:
        state_dict = {k: v for k, v in state_dict.items()
                      if not k.startswith('visual.') and k not in ('logit_scale', 'logit_bias')}
    unpacked = {}
    for key, value in state_dict.items():
        unpacked.update(split_packed_qkv(key, value) if key.endswith(PACKED_WEIGHT)
                        else {key: value})
    return unpacked


def load_clip_tower(module: nn.Module, state_dict: Dict[str, Tensor], tower: str,
                    name: str) -> None:
    """Load one CLIP tower ('visual' or 'text') of ``state_dict`` (open_clip/OpenAI keys:
    ``visual.*`` for the image tower, top-level text keys; packed or split q/k/v) into ``module``.

    Args:
        name (str): The weights' name in the error, e.g. their path.

    Raises:
        ValueError: Naming the first unexpected and the first missing key.
    """
    state_dict = clip_tower_state_dict(state_dict, tower)
    own = set(module.state_dict())
    unexpected = sorted(state_dict.keys() - own)
    missing = sorted(k for k in own - state_dict.keys() if k not in ADDED_TO_CLIP)
    if unexpected or missing:
        raise ValueError(f'{name!r} does not match the CLIP {tower} tower of '
                         f'{type(module).__name__}: first unexpected key '
                         f'{unexpected[:1]}, first missing key {missing[:1]}')
    module.load_state_dict(state_dict, strict=not any(k in own for k in ADDED_TO_CLIP))
