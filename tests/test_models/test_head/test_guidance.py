import copy

import pytest
import torch
import torch.nn.functional as F

from cat_seg.models import CATSegCLIPGuidance, CLIPImageFeatures
from catseg_testing import clip_normalisation


def test_intermediates_are_upsampled_coarse_to_fine():
    guidance = CATSegCLIPGuidance(8, out_channels=(6, 4), scale_factors=(2, 4))
    dense = torch.randn(2, 5, 3, 4)
    out = guidance(torch.zeros(2, 3, 48, 64), CLIPImageFeatures(
        dense, (torch.randn(2, 8, 3, 4), torch.randn(2, 8, 3, 4))))
    assert out.spatial is dense
    assert [g.shape for g in out.decoder] == [(2, 6, 6, 8), (2, 4, 12, 16)]


@pytest.mark.parametrize('in_channels,out_channels,factor', [(64, 16, 4), (64, 24, 4), (8, 6, 2)])
def test_upsampling_is_the_transposed_convolution_with_right_bf16_gradients(
        in_channels, out_channels, factor):
    """``up(x)`` and its input gradient in fp32; in bf16 an input gradient close to fp64's,
    which torch 2.14's CPU bf16 ``conv_transpose2d`` misses at kernel 4 with 16 or 24 output
    channels (cosine 0.03)."""
    torch.manual_seed(0)
    guidance = CATSegCLIPGuidance(in_channels, out_channels=(out_channels,),
                                  scale_factors=(factor,))
    feat = torch.randn(2, in_channels, 3, 5)
    upstream = torch.randn(2, out_channels, 3 * factor, 5 * factor)

    def run(function, dtype):
        x = feat.to(dtype, copy=True).requires_grad_()
        out = function(x)
        out.backward(upstream.to(out.dtype))
        return out.detach().double(), x.grad.double()

    def upsample(x):
        return guidance(None, CLIPImageFeatures(None, (x,))).decoder[0]

    conv = guidance.upsamplers[0]
    for expected, actual in zip(run(conv, torch.float32), run(upsample, torch.float32)):
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    exact = run(copy.deepcopy(conv).double(), torch.float64)[1]
    guidance.to(torch.bfloat16)
    grad = run(upsample, torch.bfloat16)[1]
    assert F.cosine_similarity(grad.flatten(), exact.flatten(), dim=0) > 0.999


def test_level_count_mismatches_are_explained():
    with pytest.raises(ValueError, match=r'out_channels=\(6,\) and scale_factors=\(2, 4\)'):
        CATSegCLIPGuidance(8, out_channels=(6,), scale_factors=(2, 4))
    guidance = CATSegCLIPGuidance(8, out_channels=(6, 4), scale_factors=(2, 4))
    with pytest.raises(ValueError, match='CLIP returned 1 intermediate blocks but the guidance '
                                         'has 2 levels'):
        guidance(None, CLIPImageFeatures(torch.zeros(1), (torch.zeros(1, 8, 2, 2),)))


def tiny_backbone_guidance(**kwargs):
    from cat_seg.models import CATSegBackboneGuidance
    torch.manual_seed(0)
    return CATSegBackboneGuidance(
        dict(type='mmpretrain.ResNet', depth=18, stem_channels=8, base_channels=8, num_stages=3,
             strides=(1, 2, 2), dilations=(1, 1, 1), out_indices=(0, 1, 2),
             norm_cfg=dict(type='CATSegFrozenBatchNorm2d')), img_size=64,
        **{**clip_normalisation(), **kwargs})


def test_backbone_guidance_pads_with_a_value_that_renormalises_to_zero():
    guidance = tiny_backbone_guidance()
    pad = guidance.pad_value.view(1, 3, 1, 1)
    torch.testing.assert_close(pad * guidance.scale + guidance.shift, torch.zeros(1, 3, 1, 1))
    assert CATSegCLIPGuidance.img_size is None and CATSegCLIPGuidance.pad_value is None


def test_backbone_guidance_reads_views_of_its_size_as_they_are_and_resizes_others():
    guidance = tiny_backbone_guidance().eval()
    views = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = guidance(views, None)
        stages = guidance.backbone(views * guidance.scale + guidance.shift)
        resized = guidance(torch.randn(2, 3, 48, 48), None)
    torch.testing.assert_close(out.spatial, stages[-1])
    assert [g.shape for g in out.decoder] == [stages[1].shape, stages[0].shape]
    assert resized.spatial.shape == out.spatial.shape == (2, 32, 4, 4)


def test_frozen_patterns_freeze_exactly_their_parameters():
    guidance = tiny_backbone_guidance(frozen=('layer1.*', 'conv1.weight'))
    frozen = {n for n, p in guidance.backbone.named_parameters() if not p.requires_grad}
    assert frozen == {'conv1.weight'} | {n for n, _ in guidance.backbone.named_parameters()
                                         if n.startswith('layer1.')}
    assert not any(p.requires_grad for p in tiny_backbone_guidance(frozen=('*', )).parameters())


def test_frozen_patterns_that_match_nothing_are_errors():
    with pytest.raises(ValueError, match=r"frozen patterns \['norm0.\*'\] match no parameter "
                                         r"of the guidance backbone ResNet; its parameters "
                                         r"look like 'conv1.weight'"):
        tiny_backbone_guidance(frozen=('norm0.*', ))
    with pytest.raises(TypeError, match="frozen must be a list of patterns, got the string"):
        tiny_backbone_guidance(frozen='*')
