"""The paper configs load the official v1 checkpoints (model_final_{base,large,huge,giant}.pth)
strictly and keep the v1 hyper-parameters: shown at real dimensions on the meta device, with
state dicts laid out as the v1 fixture READMEs describe (``official_v1_state_dict``)."""
import json

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmseg.registry import MODELS

from cat_seg.weights.convert_release import convert_official_state_dict
from cat_seg.weights.meta_device import parameters_on_meta
from cat_seg.models import CATSegFrozenBatchNorm2d
from cat_seg.models.clip.prompt_templates import PROMPT_TEMPLATES
from catseg_testing import DEFAULT_V1_PARITY_DIRS, OFFICIAL_CLIP as CLIP, REPO_ROOT, \
    official_v1_state_dict

PAPER = REPO_ROOT / 'configs' / 'paper'

# configs/vitb_r101_384.yaml and configs/vitl_swinb_384.yaml at ceaaad8; ViT-H/G change only the
# CLIP and TEXT_GUIDANCE_DIM (official README at ceaaad8, "Training script").
_AGGREGATOR = dict(text_guidance_proj_dim=128, appearance_guidance_proj_dim=128,
                   decoder_dims=[64, 32], decoder_guidance_proj_dims=[32, 16], num_layers=2,
                   nheads=4, hidden_dim=128, feature_resolution=[24, 24], window_size=12,
                   prompt_channel=80)
R101 = dict(name='build_resnet_backbone', depth=101, stem_out_channels=64, res2_out_channels=256,
            num_groups=1, width_per_group=64, blocks_per_stage=dict(res2=3, res3=4, res4=23))
SWIN_B = dict(name='D2SwinTransformer', embed_dim=128, depths=[2, 2, 18], num_heads=[4, 8, 16],
              window_size=12, mlp_ratio=4.0, patch_size=4, out_indices=[0, 1, 2])


def v1_model(clip: str, backbone: dict, text: int, appearance: int, decoder: list) -> dict:
    return dict(clip=CLIP[clip], backbone=backbone, aggregator=dict(
        _AGGREGATOR, text_guidance_dim=text, appearance_guidance_dim=appearance,
        decoder_guidance_dims=decoder))


V1_CHECKPOINTS = {
    'catseg_vitb_r101.py': v1_model('ViT-B/16', R101, 512, 1024, [512, 256]),
    'catseg_vitl_swinb.py': v1_model('ViT-L/14@336px', SWIN_B, 768, 512, [256, 128]),
    'catseg_vith_swinb.py': v1_model('ViT-H', SWIN_B, 1024, 512, [256, 128]),
    'catseg_vitg_swinb.py': v1_model('ViT-G', SWIN_B, 1280, 512, [256, 128]),
}


def build_paper_model(name: str):
    cfg = Config.fromfile(str(PAPER / name))
    with parameters_on_meta():
        return MODELS.build(cfg.model), cfg


@pytest.mark.parametrize('path', DEFAULT_V1_PARITY_DIRS, ids=lambda p: p.name)
def test_the_synthesised_layout_is_the_official_one(path):
    """At the fixtures' dimensions the synthesised state dict has the fixture's keys, shapes
    and dtypes exactly, so at real dimensions it stands for the released checkpoints."""
    official = torch.load(path / 'state_dict.pt', map_location='cpu')['model']
    synthesised = official_v1_state_dict(json.loads((path / 'config.json').read_text()))
    assert sorted(synthesised) == sorted(official)
    assert {k: (v.shape, v.dtype) for k, v in synthesised.items()} == {
        k: (v.shape, v.dtype) for k, v in official.items()}


@pytest.mark.parametrize('name', sorted(V1_CHECKPOINTS))
def test_paper_config_loads_its_v1_checkpoint_strictly(name):
    model, _ = build_paper_model(name)
    converted = convert_official_state_dict(official_v1_state_dict(V1_CHECKPOINTS[name]))
    own = model.state_dict()
    assert sorted(converted) == sorted(own)
    assert [k for k in own if own[k].shape != converted[k].shape] == []
    model.load_state_dict(converted, strict=True, assign=True)


@pytest.mark.parametrize('name', sorted(V1_CHECKPOINTS))
def test_paper_config_keeps_the_v1_hyper_parameters(name):
    """What shapes cannot show: text rules, frozen parts, norms, no class cut, lr multipliers."""
    model, cfg = build_paper_model(name)
    official = json.loads((DEFAULT_V1_PARITY_DIRS[0] / 'config.json').read_text())
    encoder = model.text_encoder
    assert list(encoder.templates) == official['prompt_templates'] == list(
        PROMPT_TEMPLATES['imagenet80'])
    assert encoder.synonym_rule == 'average' and model.backbone.dense_residual == 'token'
    assert model.decode_head.pad_len == 0
    assert not any(p.requires_grad for p in model.text_encoder.parameters())
    guidance = [p.requires_grad for p in model.guidance.backbone.parameters()]
    if V1_CHECKPOINTS[name]['backbone'] is R101:
        # SOLVER.BACKBONE_MULTIPLIER 0.01: trained at lr x0.01, FrozenBN statistics fixed.
        assert all(guidance)
        norms = {type(m) for m in model.guidance.backbone.modules()
                 if 'norm' in type(m).__name__.lower()}
        assert norms == {CATSegFrozenBatchNorm2d}
        optim = build_optim_wrapper(model, cfg.optim_wrapper)
        guidance_ids = {id(p) for p in model.guidance.backbone.parameters()}
        lrs = {g['lr'] for g in optim.param_groups if id(g['params'][0]) in guidance_ids}
        assert lrs and all(lr == pytest.approx(cfg.optim_wrapper.optimizer.lr * 0.01) for lr in lrs)
    else:
        # SOLVER.BACKBONE_MULTIPLIER 0.0: Swin-B frozen; stochastic depth as configured.
        assert not any(guidance)
        assert model.guidance.backbone.stages[2].blocks[-1].attn.drop.drop_prob == \
            pytest.approx(0.3)
