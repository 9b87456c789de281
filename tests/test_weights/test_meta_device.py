import pytest
import torch
from mmseg.registry import MODELS
from torch import nn

from cat_seg.weights.meta_device import parameters_on_meta


def test_parameters_go_to_meta_while_buffers_and_computations_stay_real():
    with parameters_on_meta():
        norm = nn.BatchNorm2d(4)
        # mmpretrain reads its drop-path rates with .item(), which the meta device cannot do.
        swin = MODELS.build(dict(type='mmpretrain.SwinTransformer', arch='tiny',
                                 drop_path_rate=0.2))
    assert {p.device.type for p in swin.parameters()} == {'meta'}
    assert norm.weight.device.type == 'meta' and norm.weight.requires_grad
    assert norm.running_mean.device.type == 'cpu'
    assert nn.Linear(2, 2).weight.device.type == 'cpu'


def test_registration_is_restored_after_an_error():
    with pytest.raises(RuntimeError, match='boom'):
        with parameters_on_meta():
            raise RuntimeError('boom')
    assert nn.Linear(2, 2).weight.device == torch.device('cpu')
