import pytest
import torch

from cat_seg.models import CATSegCLIPGuidance, CLIPImageFeatures


def test_intermediates_are_upsampled_coarse_to_fine():
    guidance = CATSegCLIPGuidance(8, out_channels=(6, 4), scale_factors=(2, 4))
    dense = torch.randn(2, 5, 3, 4)
    out = guidance(torch.zeros(2, 3, 48, 64), CLIPImageFeatures(
        dense, (torch.randn(2, 8, 3, 4), torch.randn(2, 8, 3, 4))))
    assert out.spatial is dense
    assert [g.shape for g in out.decoder] == [(2, 6, 6, 8), (2, 4, 12, 16)]


def test_level_count_mismatches_are_explained():
    with pytest.raises(ValueError, match=r'out_channels=\(6,\) and scale_factors=\(2, 4\)'):
        CATSegCLIPGuidance(8, out_channels=(6,), scale_factors=(2, 4))
    guidance = CATSegCLIPGuidance(8, out_channels=(6, 4), scale_factors=(2, 4))
    with pytest.raises(ValueError, match='CLIP returned 1 intermediate blocks but the guidance '
                                         'has 2 levels'):
        guidance(None, CLIPImageFeatures(torch.zeros(1), (torch.zeros(1, 8, 2, 2),)))
