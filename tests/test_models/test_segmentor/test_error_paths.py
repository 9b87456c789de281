"""Error paths of small building blocks, each with its message."""
import numpy as np
import pytest
import torch
from PIL import Image

from cat_seg.configs import mode_test_cfg
from cat_seg.weights.files import load_weights_file
from cat_seg.datasets import LoadCATSegAnnotations
from cat_seg.models.head.guidance import CATSegBackboneGuidance
from cat_seg.models.head.guided_linear import GuidedLinear
from catseg_testing import clip_normalisation


def test_guided_linear_needs_its_guidance():
    layer = GuidedLinear(4, 2, 3)
    assert layer(torch.ones(5, 4), torch.ones(5, 2)).shape == (5, 3)
    with pytest.raises(ValueError, match='expects 2 guidance channels but got no guidance'):
        layer(torch.ones(5, 4))


def test_backbone_guidance_with_one_stage_guides_aggregation_only():
    guidance = CATSegBackboneGuidance(dict(type='mmpretrain.ResNet', depth=18, stem_channels=8,
                                           base_channels=8, out_indices=(2,)), img_size=64,
                                      **clip_normalisation())
    out = guidance.eval()(torch.zeros(1, 3, 64, 64), None)
    assert out.spatial.shape == (1, 32, 4, 4) and out.decoder == ()


def test_float_label_files_are_rejected(tmp_path):
    path = tmp_path / 'label.tif'
    Image.fromarray(np.zeros((2, 2), np.float32)).save(path)
    with pytest.raises(ValueError, match='holds float32 values; expected an 8- or 16-bit'):
        LoadCATSegAnnotations()(dict(seg_map_path=str(path), seg_fields=[],
                                     reduce_zero_label=False))


def test_a_weights_file_that_is_not_a_state_dict(tmp_path):
    path = tmp_path / 'list.pth'
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ValueError, match="list.pth' holds a list, not a state dict"):
        load_weights_file(str(path))


def test_label_map_ids_that_do_not_fit_the_png_are_named(tmp_path):
    from cat_seg.datasets import save_label_map
    with pytest.raises(ValueError, match=r"holds ids 0..300, which do not fit a uint8 PNG"):
        save_label_map(np.array([[0, 300]]), 3, tmp_path / 'labels.png')


def test_checkpoint_url_without_a_file_name_is_named():
    from cat_seg.weights.download import fetch_checkpoint
    with pytest.raises(ValueError, match="checkpoint URL 'https://host/' does not end with a file"):
        fetch_checkpoint('https://host/')


def test_inference_modes_map_to_test_settings_in_one_place():
    assert mode_test_cfg('whole') == dict(mode='whole')
    assert mode_test_cfg('slide')['mode'] == 'slide'
    with pytest.raises(ValueError, match=r"mode='tiled' is not one of \['whole', 'slide'\]"):
        mode_test_cfg('tiled')
