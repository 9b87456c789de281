"""Checkpoints the runner loads (``load_from``, ``tools/test.py``'s CHECKPOINT, ``--resume``):
URLs under the same weights-only rule as local files, official CAT-Seg checkpoints converted."""
import pickle
from typing import Dict, Optional

import torch
from mmengine.dist import barrier, get_dist_info
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import CheckpointLoader
from mmseg.registry import HOOKS
from torch import Tensor

from ..checkpoint import convert_official_state_dict, fetch_checkpoint

OFFICIAL_KEY_PREFIX = 'sem_seg_head.'   # every official checkpoint has the predictor's keys


# Replaces mmengine's http(s) loader: it goes through torch.hub, whose weights_only defaults to
# False although torch.load's default (and so mmengine's local loader) is True since torch 2.6.
@CheckpointLoader.register_scheme(prefixes=('http://', 'https://'), force=True)
def load_from_url(filename: str, map_location: Optional[str] = None) -> dict:
    """A checkpoint URL, downloaded once into torch hub's ``checkpoints`` directory
    (``fetch_checkpoint``; by rank 0 while the others wait) and loaded with ``weights_only=True``.

    Raises:
        ValueError: If the download fails, or the file is a pickle that is not plain weights.
    """
    rank, world_size = get_dist_info()
    if rank == 0:
        fetch_checkpoint(filename)
    if world_size > 1:
        barrier()
    path = fetch_checkpoint(filename)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(f'checkpoint {filename!r} (downloaded to {path!r}) is not a plain '
                         'weights file and is refused: it may contain code (weights_only=True '
                         f'loading failed: {error})') from None


def is_official_state_dict(state_dict: Dict[str, Tensor]) -> bool:
    """Whether a state dict has the layout of the official (detectron2) CAT-Seg release."""
    return any(str(key).startswith(OFFICIAL_KEY_PREFIX) for key in state_dict)


@HOOKS.register_module()
class CATSegOfficialCheckpointHook(Hook):
    """Let the runner load official CAT-Seg checkpoints (``model_base.pth``, ``model_large.pth``).

    After the runner reads a checkpoint and before it loads the weights, an official one
    (detectron2's ``{'model': state_dict}`` or a bare state dict) is converted with
    ``convert_official_state_dict`` and must then fit the model exactly: the runner's own loading
    of ``load_from`` is not strict, and would start from random weights where keys differ. Our
    checkpoints pass unchanged.

    Examples:
        >>> load_from = 'model_base.pth'   # a path or a URL
        >>> custom_hooks = [dict(type='CATSegVocabularyHook'),
        ...                 dict(type='CATSegOfficialCheckpointHook')]
    """

    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state_dict = checkpoint.get('model', checkpoint)
        if not isinstance(state_dict, dict) or not is_official_state_dict(state_dict):
            return
        converted = convert_official_state_dict(state_dict)
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        own = model.state_dict()
        missing = sorted(own.keys() - converted.keys())
        unexpected = sorted(converted.keys() - own.keys())
        reshaped = sorted(key for key in own.keys() & converted.keys()
                          if own[key].shape != converted[key].shape)
        if missing or unexpected or reshaped:
            raise ValueError(
                f'the official CAT-Seg checkpoint does not fit the model of this config: '
                f'{len(missing)} missing keys {missing[:3]}, {len(unexpected)} unexpected keys '
                f'{unexpected[:3]}, {len(reshaped)} keys of another shape {reshaped[:3]}; '
                'model_base.pth needs a ViT-B/16 config (configs/catseg_vitb.py), '
                'model_large.pth a ViT-L/14 one (configs/catseg_vitl.py)')
        checkpoint.clear()
        checkpoint['state_dict'] = converted
