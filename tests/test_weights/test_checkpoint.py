"""Official checkpoint conversion and safe weight loading (cat_seg.weights, the converter CLI)."""
import subprocess
import sys

import pytest
import torch

from cat_seg.weights.clip_towers import load_clip_tower
from cat_seg.weights.convert_release import convert_official_state_dict
from cat_seg.weights.files import load_weights_file
from cat_seg.models import CATSegCLIPImageEncoder
from catseg_testing import REPO_ROOT

CONVERTER = REPO_ROOT / 'tools' / 'model_converters' / 'catseg_official_to_mmseg.py'
TINY_VISION = dict(embed_dims=64, num_layers=2, num_heads=2, patch_size=16, output_dims=32,
                   pretrain_img_size=32, mlp_ratio=4.0, act='quick_gelu')


def test_every_official_key_is_converted_or_explicitly_dropped(parity_fixture):
    official = parity_fixture.state_dict
    converted = convert_official_state_dict(official)
    dropped = [k for k in official if k.endswith(('attn_mask', 'logit_scale'))]
    assert len(converted) == len(official) - len(dropped)
    assert all(k.startswith(('backbone.', 'text_encoder.', 'guidance.', 'decode_head.'))
               for k in converted)


def test_unexpected_official_key_is_named():
    with pytest.raises(ValueError, match=r"unexpected key 'sem_seg_head.extra.weight'"):
        convert_official_state_dict({'sem_seg_head.extra.weight': torch.zeros(1)})


@pytest.mark.slow
def test_converter_cli_writes_a_loadable_checkpoint(parity_fixture, tmp_path):
    out = tmp_path / 'converted.pth'
    result = subprocess.run([sys.executable, str(CONVERTER),
                             str(parity_fixture.path / 'state_dict.pt'), str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f'-> {out}' in result.stdout
    state_dict = torch.load(out, weights_only=True)['state_dict']
    assert state_dict.keys() == convert_official_state_dict(parity_fixture.state_dict).keys()


@pytest.mark.slow
def test_converter_cli_reports_a_missing_file(tmp_path):
    result = subprocess.run([sys.executable, str(CONVERTER), str(tmp_path / 'missing.pth'),
                             str(tmp_path / 'out.pth')], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert "error: weights file '" in result.stderr and 'missing.pth' in result.stderr


def test_open_clip_style_weights_with_packed_attention_load_into_the_encoder(tmp_path):
    torch.manual_seed(0)
    source = CATSegCLIPImageEncoder(TINY_VISION, img_size=64, guidance_layers=(0,))
    packed = {}
    for key, value in source.state_dict().items():
        if key.endswith('q_proj_weight'):
            prefix = key[:-len('q_proj_weight')]
            value = torch.cat([source.state_dict()[prefix + f'{p}_proj_weight'] for p in 'qkv'])
            key = prefix + 'in_proj_weight'
        elif key.endswith(('k_proj_weight', 'v_proj_weight')):
            continue
        packed['visual.' + key] = value
    packed['logit_scale'] = torch.ones(())
    path = tmp_path / 'open_clip_model.bin'
    torch.save(packed, path)
    target = CATSegCLIPImageEncoder(TINY_VISION, img_size=64, guidance_layers=(0,),
                                    pretrained=str(path))
    for key, value in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[key], value)


def test_clip_weights_of_another_architecture_are_rejected_with_key_names(tmp_path):
    path = tmp_path / 'wrong.pth'
    torch.save({'visual.conv1.weight': torch.zeros(1), 'visual.extra': torch.zeros(1)}, path)
    encoder = CATSegCLIPImageEncoder(TINY_VISION, img_size=64, guidance_layers=(0,))
    with pytest.raises(ValueError, match=r"first unexpected key \['extra'\], first missing key"):
        load_clip_tower(encoder, load_weights_file(str(path)), 'visual', str(path))


def test_mmengine_and_detectron2_containers_are_unwrapped(tmp_path):
    for container in ('state_dict', 'model'):
        path = tmp_path / f'{container}.pth'
        torch.save({container: {'a': torch.ones(1)}, 'meta': {'iter': 3}}, path)
        assert list(load_weights_file(str(path))) == ['a']


@pytest.mark.slow
def test_converter_checks_the_result_against_a_config(parity_fixture, tmp_path):
    from mmengine.config import Config

    from catseg_testing import catseg_config_from_fixture
    config = tmp_path / 'fixture_model.py'
    model_cfg = catseg_config_from_fixture(parity_fixture.config)
    Config(dict(model=model_cfg)).dump(str(config))
    args = [sys.executable, str(CONVERTER), str(parity_fixture.path / 'state_dict.pt'),
            str(tmp_path / 'out.pth'), '--config', str(config)]
    assert subprocess.run(args, capture_output=True, timeout=120).returncode == 0
    model_cfg['decode_head']['num_layers'] += 1       # a model the checkpoint does not fit
    Config(dict(model=model_cfg)).dump(str(config))
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert 'does not match the config' in result.stderr and 'missing keys' in result.stderr
