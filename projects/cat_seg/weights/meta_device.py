"""Build a model's structure without allocating its parameters (CLI checks, tests at real size).

``torch.device('meta')`` as a context puts *every* new tensor on the meta device, which breaks
builders that compute with tensors: mmpretrain's ResNet and Swin read their drop-path rates from
``torch.linspace(...)`` with ``.item()``. Here only parameters go to the meta device, as they are
registered; buffers and temporaries stay real (accelerate's ``init_empty_weights`` does the same).
"""
import contextlib
from typing import Iterator

from mmseg.utils import ConfigType
from torch import nn


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Parameters registered inside live on the meta device: shapes without memory (ViT-bigG's
    2.5 billion parameters cost nothing). Each is created on the CPU first, one at a time.

    Examples:
        >>> with parameters_on_meta():
        ...     layer = nn.Linear(4096, 4096)
        >>> layer.weight.device
        device(type='meta')
    """
    register = nn.Module.register_parameter

    def register_on_meta(module: nn.Module, name: str, param) -> None:
        if param is not None:
            param = nn.Parameter(param.to('meta'), requires_grad=param.requires_grad)
        register(module, name, param)

    nn.Module.register_parameter = register_on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


def build_model_on_meta(model_cfg: ConfigType) -> nn.Module:
    """The model of a config (``cfg.model``) with its parameters on the meta device: its state
    dict's names and shapes, to check a checkpoint against before loading it."""
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    # Nested parts (the data preprocessor) are looked up in the default scope, as the runner does.
    with DefaultScope.overwrite_default_scope('mmseg'), parameters_on_meta():
        return MODELS.build(model_cfg)
