import pytest
import torch
from mmseg.registry import MODELS
from torch import nn

from cat_seg.models import CATSegFrozenBatchNorm2d


def random_norm(channels=6):
    torch.manual_seed(0)
    norm = CATSegFrozenBatchNorm2d(channels)
    for name, value in (('weight', 1 + 0.2 * torch.randn(channels)),
                        ('bias', torch.randn(channels)), ('running_mean', torch.randn(channels)),
                        ('running_var', torch.rand(channels) + 0.5)):
        getattr(norm, name).copy_(value)
    return norm


def test_values_are_those_of_batch_norm_in_eval_mode_in_both_modes():
    norm = random_norm()
    reference = nn.BatchNorm2d(6).eval()
    reference.load_state_dict(norm.state_dict(), strict=False)
    x = torch.randn(2, 6, 5, 3, requires_grad=True)
    for mode in (norm.train(), norm.eval()):
        torch.testing.assert_close(mode(x), reference(x))
    expected = (x - norm.running_mean.view(1, -1, 1, 1)) / (
        norm.running_var.view(1, -1, 1, 1) + 1e-5).sqrt() * norm.weight.view(1, -1, 1, 1) \
        + norm.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(norm(x), expected)
    norm(x).sum().backward()
    assert x.grad is not None


def test_statistics_are_buffers_only_and_never_updated():
    norm = random_norm().train()
    before = {k: v.clone() for k, v in norm.state_dict().items()}
    norm(torch.randn(4, 6, 2, 2))
    assert list(norm.parameters()) == []
    assert sorted(norm.state_dict()) == ['bias', 'running_mean', 'running_var', 'weight']
    for key, value in norm.state_dict().items():
        assert torch.equal(value, before[key])


def test_mmpretrain_resnet_names_it_bn_and_has_no_norm_parameters():
    resnet = MODELS.build(dict(type='mmpretrain.ResNet', depth=18, num_stages=1, strides=(1, ),
                               dilations=(1, ), out_indices=(0, ),
                               norm_cfg=dict(type='CATSegFrozenBatchNorm2d', eps=1e-3)))
    keys = resnet.state_dict().keys()
    assert {'bn1.running_var', 'layer1.0.bn2.weight'} <= set(keys)
    assert not any('num_batches_tracked' in k for k in keys)
    assert all('bn' not in name for name, _ in resnet.named_parameters())
    assert resnet.bn1.eps == 1e-3


def test_wrong_input_is_named():
    with pytest.raises(ValueError, match=r'CATSegFrozenBatchNorm2d\(6\) expects \(B, 6, H, W\), '
                                         r'got \(2, 5, 3, 3\)'):
        CATSegFrozenBatchNorm2d(6)(torch.zeros(2, 5, 3, 3))
