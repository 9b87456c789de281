"""A checkpoint into a model, strictly: ours as it is, an official CAT-Seg one converted."""
from typing import Dict, Union

from torch import Tensor, nn

from .convert_release import convert_official_state_dict, is_official_state_dict
from .download import load_checkpoint_file


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
