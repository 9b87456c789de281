"""Official arXiv-v1 checkpoints (cat_seg.weights.convert_v1): recognised by their keys, every key
mapped or dropped, the Swin patch merging reordered exactly, on the fly and by the CLI."""
import json
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmseg.registry import MODELS

from cat_seg.apis.inferencer import load_checkpoint_into
from cat_seg.weights.convert_release import convert_official_state_dict
from cat_seg.weights.convert_v1 import is_v1_layout, unfold_channel_order
from catseg_testing import (DEFAULT_PARITY_DIR, DEFAULT_V1_PARITY_DIRS, REPO_ROOT,
                            v1_catseg_config_from_fixture)

CONVERTER = REPO_ROOT / 'tools' / 'model_converters' / 'catseg_official_to_mmseg.py'
R101, SWINB = DEFAULT_V1_PARITY_DIRS


def official(path):
    return torch.load(path / 'state_dict.pt', map_location='cpu')['model']


@pytest.mark.parametrize('path', DEFAULT_V1_PARITY_DIRS, ids=lambda p: p.name)
def test_every_v1_key_is_converted_split_or_explicitly_dropped(path):
    state_dict = official(path)
    assert is_v1_layout(state_dict)
    converted = convert_official_state_dict(state_dict)
    dropped = [k for k in state_dict if k.endswith(('attn_mask', 'logit_scale'))]
    fused = [k for k in state_dict if k.endswith('in_proj_weight')]
    assert len(converted) == len(state_dict) - len(dropped) + 2 * len(fused)
    backbone = [k for k in state_dict if k.startswith('backbone.')]
    assert len([k for k in converted if k.startswith('guidance.backbone.')]) == len(backbone)
    for key in fused:
        ours = key.replace('sem_seg_head.predictor.clip_model.visual.', 'backbone.').replace(
            'sem_seg_head.predictor.clip_model.', 'text_encoder.')
        torch.testing.assert_close(torch.cat([converted[ours.replace('in_proj', f'{p}_proj')]
                                              for p in 'qkv']), state_dict[key])


def test_the_release_layout_is_not_taken_for_v1():
    assert not is_v1_layout(official(DEFAULT_PARITY_DIR))


def test_detectron2_resnet_keys_become_mmpretrain_resnet_keys():
    converted = convert_official_state_dict(official(R101))
    assert {'guidance.backbone.conv1.weight', 'guidance.backbone.bn1.running_var',
            'guidance.backbone.layer1.0.downsample.0.weight',
            'guidance.backbone.layer1.0.downsample.1.running_mean',
            'guidance.backbone.layer3.5.conv2.weight',
            'guidance.backbone.layer3.5.bn3.weight'} <= set(converted)


def test_swin_patch_merging_is_reordered_to_mmpretrain_exactly():
    """Swin's merging (concatenate the 2x2 neighbours (0, 0), (1, 0), (0, 1), (1, 1); LayerNorm;
    Linear) equals mmpretrain's PatchMerging with the converted weights."""
    from mmpretrain.models.utils import PatchMerging
    torch.manual_seed(0)
    channels, height, width = 3, 4, 6
    weight, norm_weight, norm_bias = (torch.randn(2 * channels, 4 * channels),
                                      torch.randn(4 * channels), torch.randn(4 * channels))
    x = torch.randn(2, height, width, channels)
    merged = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]],
                       dim=-1)
    expected = torch.nn.functional.layer_norm(merged, (4 * channels, ), norm_weight,
                                              norm_bias) @ weight.T
    ours = PatchMerging(channels, 2 * channels)
    ours.load_state_dict({'reduction.weight': unfold_channel_order(weight),
                          'norm.weight': unfold_channel_order(norm_weight),
                          'norm.bias': unfold_channel_order(norm_bias)})
    out, shape = ours(x.flatten(1, 2), (height, width))
    torch.testing.assert_close(out, expected.flatten(1, 2))


def test_swin_relative_position_index_is_mmpretrains():
    config = json.loads((SWINB / 'config.json').read_text())
    model = MODELS.build(v1_catseg_config_from_fixture(config))
    converted = convert_official_state_dict(official(SWINB))
    index = [k for k in converted if k.endswith('relative_position_index')]
    assert index and all(torch.equal(converted[k], model.state_dict()[k]) for k in index)


def test_a_backbone_that_is_neither_resnet_nor_swin_is_named():
    with pytest.raises(ValueError, match="unexpected key 'backbone.fpn_lateral2.weight' in the "
                                         "official v1 CAT-Seg checkpoint: the guidance backbone "
                                         "is neither detectron2's ResNet nor D2SwinTransformer"):
        convert_official_state_dict({'backbone.fpn_lateral2.weight': torch.zeros(1)})


def test_an_unmapped_swin_key_is_named():
    # Swin V2's log-spaced coordinates: no D2SwinTransformer has them.
    key = 'backbone.layers.0.blocks.0.attn.relative_coords_table'
    state_dict = dict(official(SWINB), **{key: torch.zeros(1)})
    with pytest.raises(ValueError, match=f"unexpected key '{key}' in the "
                                         "official v1 CAT-Seg checkpoint: it is neither mapped"):
        convert_official_state_dict(state_dict)


@pytest.mark.slow
@pytest.mark.parametrize('path', DEFAULT_V1_PARITY_DIRS, ids=lambda p: p.name)
def test_a_v1_checkpoint_loads_strictly_on_the_fly_and_through_the_cli(path, tmp_path):
    config = json.loads((path / 'config.json').read_text())
    model = MODELS.build(v1_catseg_config_from_fixture(config))
    load_checkpoint_into(model, str(path / 'state_dict.pt'))
    model_config = tmp_path / 'fixture_model.py'
    Config(dict(model=v1_catseg_config_from_fixture(config),
                custom_imports=dict(imports=['cat_seg', 'mmpretrain.models']))).dump(
                    str(model_config))
    out = tmp_path / 'converted.pth'
    result = subprocess.run([sys.executable, str(CONVERTER), str(path / 'state_dict.pt'),
                             str(out), '--config', str(model_config)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    converted = torch.load(out, weights_only=True)['state_dict']
    assert converted.keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(converted[key], value), key
