"""Checkpoints the runner loads (``load_from``, ``tools/test.py``'s CHECKPOINT, ``--resume``):
URLs under the same weights-only rule as local files, official CAT-Seg checkpoints converted."""
import pickle
from typing import Optional

import torch
from mmengine.dist import barrier, get_dist_info
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import CheckpointLoader
from mmseg.registry import HOOKS

from .convert_release import convert_official_state_dict, is_official_state_dict
from .download import fetch_checkpoint
from .files import refused_pickle
from .loading import check_state_dict_fits


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
        raise refused_pickle(f'checkpoint {filename!r} (downloaded to {path!r})', error) \
            from None


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
        check_state_dict_fits(
            model, converted, 'the official CAT-Seg checkpoint does not fit the model of this '
            'config', 'model_base.pth needs a ViT-B/16 config (configs/catseg_vitb.py), '
            'model_large.pth a ViT-L/14 one (configs/catseg_vitl.py)')
        checkpoint.clear()
        checkpoint['state_dict'] = converted
