"""Every model key of the official configs that we support takes a value other than the shipped
one, independently of the others (docs/parity.md, "Official config keys").

Each case changes one official hyper-parameter of a parity fixture's ``config.json`` (the
official code's keys, lower-cased; release and arXiv v1), builds our model through the same
mapping the parity tests use (``catseg_config_from_fixture``), synthesises a state dict in the
official layout with the shapes the official code would give it (``official_*_state_dict``,
which reads no model of ours), converts it and loads it strictly. Models are built with their
parameters on the meta device. Keys that no shape shows are checked on the built model too.
"""
import copy
import json
import re

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmseg.registry import MODELS

from cat_seg.models.execution import EXECUTION_PLANS
from cat_seg.models.head.catseg_head import CATSegHead, CATSegHeadInputs
from cat_seg.models.head.class_aggregation import ClassAggregation
from cat_seg.models.head.guidance import Guidance
from cat_seg.weights.convert_release import convert_official_state_dict
from cat_seg.weights.meta_device import parameters_on_meta
from catseg_testing import (DEFAULT_PARITY_DIR, DEFAULT_V1_PARITY_DIRS, OFFICIAL_CLIP, REPO_ROOT,
                            catseg_config_from_fixture, official_release_state_dict,
                            official_v1_state_dict, parity_fixture_dirs,
                            v1_catseg_config_from_fixture)

V1_R101, V1_SWINB = DEFAULT_V1_PARITY_DIRS


def fixture_config(path) -> dict:
    return json.loads((path / 'config.json').read_text())


def changed(config: dict, changes: dict) -> dict:
    """A copy of ``config`` with ``changes`` applied, keys as dotted paths ('aggregator.nheads')."""
    config = copy.deepcopy(config)
    for path, value in changes.items():
        *parents, leaf = path.split('.')
        node = config
        for name in parents:
            node = node[name]
        node[leaf] = value
    return config


def trainable_clip(model) -> set:
    return set(model.trainable_clip_parameters)


# (official key, fixture fields -> value, check of the built model or None[, label of the value
# in the test id, else the first value]). The values are ones the official code accepts and runs
# with; docs/parity.md gives the accepted ranges.
RELEASE_CASES = [
    ('HIDDEN_DIMS', {'aggregator.hidden_dim': 96}, None),
    ('NUM_HEADS', {'aggregator.nheads': 8}, lambda m: m.decode_head.layers[0].class_agg.num_heads
     == 8),
    ('NUM_LAYERS', {'aggregator.num_layers': 3}, None),
    ('NUM_LAYERS', {'aggregator.num_layers': 0}, None),
    ('WINDOW_SIZES', {'aggregator.window_size': 6}, None),
    ('WINDOW_SIZES', {'aggregator.window_size': 24}, None),
    ('POOLING_SIZES', {'pooling_sizes.train_forward': [3, 4]},
     lambda m: m.decode_head.train_pool_size == (3, 4)),
    ('TEXT_GUIDANCE_DIM', {'aggregator.text_guidance_dim': 0,
                           'aggregator.text_guidance_proj_dim': 0}, None),
    ('TEXT_GUIDANCE_PROJ_DIM', {'aggregator.text_guidance_proj_dim': 48}, None),
    ('TEXT_GUIDANCE_PROJ_DIM', {'aggregator.text_guidance_proj_dim': 0},
     lambda m: m.decode_head.text_guidance_proj is None),
    ('APPEARANCE_GUIDANCE_DIM', {'aggregator.appearance_guidance_dim': 0,
                                 'aggregator.appearance_guidance_proj_dim': 0}, None),
    ('APPEARANCE_GUIDANCE_PROJ_DIM', {'aggregator.appearance_guidance_proj_dim': 24}, None),
    ('APPEARANCE_GUIDANCE_PROJ_DIM', {'aggregator.appearance_guidance_proj_dim': 0},
     lambda m: m.decode_head.spatial_guidance_proj is None),
    ('DECODER_DIMS', {'aggregator.decoder_dims': [96, 48]}, None),
    ('DECODER_DIMS', {'aggregator.decoder_dims': [40, 24]}, None),
    ('DECODER_GUIDANCE_PROJ_DIMS', {'aggregator.decoder_guidance_proj_dims': [8, 24]}, None),
    ('DECODER_GUIDANCE_PROJ_DIMS', {'aggregator.decoder_guidance_proj_dims': [0, 16]}, None),
    ('DECODER_GUIDANCE_DIMS', {'aggregator.decoder_guidance_dims': [0, 0],
                               'aggregator.decoder_guidance_proj_dims': [0, 0]}, None),
    ('DECODER_GUIDANCE_DIMS', {'aggregator.decoder_dims': [64, 32, 16],
                               'aggregator.decoder_guidance_dims': [256, 128, 64],
                               'aggregator.decoder_guidance_proj_dims': [32, 16, 8]},
     lambda m: len(m.decode_head.decoder.stages) == 2),
    ('ATTENTION_TYPE', {'aggregator.attention_type': 'full'},
     lambda m: m.decode_head.layers[0].class_agg.attention_type == 'full'),
    ('PROMPT_ENSEMBLE_TYPE', {'prompt_templates': ['itap of a {}.', 'a bad photo of the {}.',
                                                   'A photo of a {} in the scene']},
     lambda m: len(m.text_encoder.templates) == 3, '3 templates'),
    ('PROMPT_DEPTH, PROMPT_LENGTH', {'clip.prompt_depth': 4, 'clip.prompt_length': 3}, None),
    ('PROMPT_DEPTH, PROMPT_LENGTH', {'clip.prompt_depth': 6, 'clip.prompt_length': 3},
     lambda m: m.backbone.vpt_prompts.shape == (4, 3, 64)),
    ('CLIP_FINETUNE', {'clip_finetune': 'prompt', 'clip.prompt_depth': 4,
                       'clip.prompt_length': 3},
     lambda m: trainable_clip(m) == {'backbone.vpt_prompts'}),
    ('CLIP_FINETUNE', {'clip_finetune': 'full', 'clip.prompt_depth': 4, 'clip.prompt_length': 3},
     lambda m: trainable_clip(m) == {n for n, _ in m.named_parameters()
                                     if '.transformer.resblocks.' in n or 'vpt' in n},
     'full with prompts'),
    ('CLIP_FINETUNE', {'clip_finetune': 'full'},
     lambda m: trainable_clip(m) == {n for n, _ in m.named_parameters()
                                     if '.transformer.resblocks.' in n}),
    ('CLIP_FINETUNE', {'clip_finetune': 'none'}, lambda m: trainable_clip(m) == set()),
    ('CLIP_PRETRAINED', {'clip.vision_patch_size': 14, 'clip.image_resolution': 224,
                         'clip_resolution': [336, 336], 'layer_indexes': [0, 3]},
     lambda m: m.backbone.img_size == (336, 336), 'patch 14 at 336 px'),
    ('MASK_FORMER.SIZE_DIVISIBILITY', {'size_divisibility': 64},
     lambda m: m.pad_size_divisor == 64),
    ('MASK_FORMER.SIZE_DIVISIBILITY', {'size_divisibility': 0},
     lambda m: m.pad_size_divisor == 1),
    ('IGNORE_VALUE', {'ignore_value': 0}, lambda m: m.decode_head.ignore_index == 0),
]

V1_CASES = [
    ('TEXT_GUIDANCE_PROJ_DIM', V1_R101, {'aggregator.text_guidance_proj_dim': 16}, None),
    ('APPEARANCE_GUIDANCE_PROJ_DIM', V1_SWINB, {'aggregator.appearance_guidance_proj_dim': 48},
     None),
    ('NUM_LAYERS', V1_SWINB, {'aggregator.num_layers': 1}, None),
    ('PROMPT_DEPTH, PROMPT_LENGTH', V1_R101, {'clip.prompt_depth': 2, 'clip.prompt_length': 5},
     None),
    ('CLIP_FINETUNE', V1_R101, {'clip_finetune': 'full'},
     lambda m: trainable_clip(m) == {n for n, _ in m.named_parameters()
                                     if n.startswith('backbone.')}),
    ('SWIN.EMBED_DIM, DEPTHS, NUM_HEADS', V1_SWINB, {
        'backbone.embed_dim': 48, 'backbone.depths': [1, 2, 3], 'backbone.num_heads': [2, 3, 4],
        'aggregator.appearance_guidance_dim': 192, 'aggregator.decoder_guidance_dims': [96, 48]},
     None),
    ('SWIN.WINDOW_SIZE', V1_SWINB, {'backbone.window_size': 7}, None),
    ('SWIN.MLP_RATIO', V1_SWINB, {'backbone.mlp_ratio': 3.0}, None),
    ('SWIN.PATCH_SIZE', V1_SWINB, {'backbone.patch_size': 2}, None),
    ('SWIN.QKV_BIAS', V1_SWINB, {'backbone.qkv_bias': False}, None),
    ('SWIN.PATCH_NORM', V1_SWINB, {'backbone.patch_norm': False}, None),
    ('SWIN.QK_SCALE', V1_SWINB, {'backbone.qk_scale': 0.25},
     lambda m: m.guidance.backbone.stages[0].blocks[0].attn.w_msa.scale == 0.25),
    ('SWIN.APE', V1_SWINB, {'backbone.ape': True, 'backbone.pretrain_img_size': 224}, None),
    ('RESNETS.STEM_OUT_CHANNELS', V1_R101, {'backbone.stem_out_channels': 24}, None),
    ('RESNETS.STRIDE_IN_1X1', V1_R101, {'backbone.stride_in_1x1': True},
     lambda m: m.guidance.backbone.layer2[0].conv1.stride == (2, 2)),
    ('RESNETS.DEPTH', V1_R101, {'backbone.depth': 101,
                                'backbone.blocks_per_stage': {'res2': 3, 'res3': 4, 'res4': 23}},
     lambda m: m.guidance.backbone.depth == 101),
    ('SOLVER.BACKBONE_MULTIPLIER', V1_R101, {'solver.backbone_multiplier': 0.0},
     lambda m: not any(p.requires_grad for p in m.guidance.backbone.parameters())),
]


def assert_loads_strictly(model, converted):
    own = model.state_dict()
    assert sorted(converted) == sorted(own)
    assert [k for k in own if own[k].shape != converted[k].shape] == []
    model.load_state_dict(converted, strict=True, assign=True)


@pytest.mark.parametrize('path', parity_fixture_dirs(), ids=lambda p: p.name)
def test_the_synthesised_release_layout_is_the_fixtures(path):
    """At a fixture's dimensions the synthesised release state dict has its keys and shapes."""
    official = torch.load(path / 'state_dict.pt', map_location='cpu')['model']
    synthesised = official_release_state_dict(fixture_config(path))
    assert {k: (v.shape, v.dtype) for k, v in synthesised.items()} == {
        k: (v.shape, v.dtype) for k, v in official.items()}


def case_id(case) -> str:
    key, changes, *rest = case
    label = rest[1] if len(rest) > 1 else list(changes.values())[0]
    return f'{key}={label}'


@pytest.mark.parametrize('key, changes, check', [c[:3] for c in RELEASE_CASES],
                         ids=map(case_id, RELEASE_CASES))
def test_release_key_takes_another_value(key, changes, check):
    config = changed(fixture_config(DEFAULT_PARITY_DIR), changes)
    with parameters_on_meta():
        model = MODELS.build(catseg_config_from_fixture(config))
    assert_loads_strictly(model, convert_official_state_dict(official_release_state_dict(config)))
    assert check is None or check(model)


@pytest.mark.parametrize('key, path, changes, check', V1_CASES,
                         ids=[case_id((c[0], *c[2:])) for c in V1_CASES])
def test_v1_key_takes_another_value(key, path, changes, check):
    config = changed(fixture_config(path), changes)
    with parameters_on_meta():
        model = MODELS.build(v1_catseg_config_from_fixture(config))
    assert_loads_strictly(model, convert_official_state_dict(official_v1_state_dict(config)))
    assert check is None or check(model)


# CLIP_PRETRAINED values the release runs with: (our entry config, its CLIP arch override, official
# cat_seg_model.py CLIP input and guidance blocks, configs/vit*.yaml TEXT/APPEARANCE_GUIDANCE_DIM).
RELEASE_CLIPS = {
    'ViT-B/16': ('catseg_vitb.py', None, 384, [3, 7], 512),
    'ViT-L/14@336px': ('catseg_vitl.py', None, 336, [7, 15], 768),
    'ViT-L/14': ('catseg_vitl.py', 'vit-l14', 336, [7, 15], 768),
}


@pytest.mark.parametrize('name', sorted(RELEASE_CLIPS))
def test_release_entry_configs_load_each_official_clip_at_real_size(name):
    config_name, arch, resolution, blocks, guidance = RELEASE_CLIPS[name]
    clip = OFFICIAL_CLIP[name]
    width = clip['vision_width']
    official = changed(fixture_config(DEFAULT_PARITY_DIR), {
        'clip': clip, 'clip_resolution': [resolution] * 2, 'layer_indexes': blocks,
        'upsample1.in_channels': width, 'upsample2.in_channels': width,
        'aggregator.text_guidance_dim': guidance, 'aggregator.appearance_guidance_dim': guidance})
    cfg = Config.fromfile(str(REPO_ROOT / 'configs' / config_name)).model
    if arch is not None:
        cfg.backbone.arch = cfg.text_encoder.arch = arch
    with parameters_on_meta():
        model = MODELS.build(cfg)
    assert_loads_strictly(model, convert_official_state_dict(
        official_release_state_dict(official)))


def official_class_layer_full(layer, x, guidance, pad_len):
    """The official ClassTransformerLayer (model.py, pooling 1) with ATTENTION_TYPE "full":
    learned padding tokens appended up to ``pad_len``, pre-norm softmax attention over the
    class axis scaled by 1/sqrt(d), MLP, padding dropped, whole result added to the input.
    x (B, T, H, W, C), guidance (B, T, C_g)."""
    batch, classes, height, width, channels = x.shape
    pad = pad_len - classes
    tokens = torch.cat([x, layer.padding_tokens.expand(batch, pad, height, width, -1)], dim=1)
    guidance = torch.cat([guidance, layer.padding_guidance.expand(batch, pad, -1)], dim=1)
    tokens = tokens.permute(0, 2, 3, 1, 4).reshape(-1, pad_len, channels)    # (BHW, T', C)
    guidance = guidance[:, None, None].expand(-1, height, width, -1, -1).reshape(
        -1, pad_len, guidance.shape[-1])
    y = layer.norm1(tokens)
    guided = torch.cat([y, guidance], dim=-1)
    q, k = (F.linear(guided, proj.weight, proj.bias).unflatten(-1, (layer.num_heads, -1))
            for proj in (layer.attn.q, layer.attn.k))
    v = layer.attn.v(y).unflatten(-1, (layer.num_heads, -1))
    weights = torch.softmax(torch.einsum('nlhd,nshd->nlsh', q, k) / q.shape[-1] ** 0.5, dim=2)
    tokens = tokens + torch.einsum('nlsh,nshd->nlhd', weights, v).flatten(-2)
    tokens = tokens + layer.mlp(layer.norm2(tokens))
    tokens = tokens.view(batch, height, width, pad_len, channels).permute(0, 3, 1, 2, 4)
    return x + tokens[:, :classes]


def test_full_attention_is_the_official_softmax_over_the_padded_classes():
    torch.manual_seed(0)
    layer = ClassAggregation(16, 8, num_heads=2, pad_len=7, attention_type='full')
    for param in (layer.padding_tokens, layer.padding_guidance):
        torch.nn.init.normal_(param)
    x, guidance = torch.randn(2, 3, 4, 5, 16), torch.randn(2, 3, 8)
    with torch.no_grad():
        ours = layer(x, guidance, (1, 1))
        linear = ClassAggregation(16, 8, num_heads=2, pad_len=7)
        linear.load_state_dict(layer.state_dict())
        torch.testing.assert_close(ours, official_class_layer_full(layer, x, guidance, 7))
        assert not torch.allclose(ours, linear(x, guidance, (1, 1)))


def test_an_unknown_attention_type_is_named():
    cfg = catseg_config_from_fixture(fixture_config(DEFAULT_PARITY_DIR))['decode_head']
    with pytest.raises(ValueError, match=r"attention_type='softmax' is not one of "
                                         r"\['linear', 'full'\]"):
        MODELS.build(dict(cfg, attention_type='softmax'))


@pytest.mark.parametrize('key, shape, setting', [
    ('sem_seg_head.predictor.clip_model.visual.transformer.prompt_tokens', (0, 3, 64),
     'PROMPT_LENGTH > 0 with PROMPT_DEPTH 0'),
    ('sem_seg_head.predictor.clip_model.visual.attnpool.positional_embedding', (50, 2048),
     'a ResNet CLIP_PRETRAINED'),
])
def test_the_converter_names_an_unsupported_official_setting(key, shape, setting):
    state_dict = official_release_state_dict(fixture_config(DEFAULT_PARITY_DIR))
    state_dict[key] = torch.empty(shape, device='meta')
    with pytest.raises(ValueError, match=f'trained with {re.escape(setting)}.*{re.escape(key)}'):
        convert_official_state_dict(state_dict)


def test_widths_only_the_official_rules_allow_run_in_both_plans():
    """GroupNorm over 40 and 24 channels, a decoder stage without guidance, text and spatial
    projections of different widths, softmax class attention: same logits in both plans."""
    torch.manual_seed(0)
    head = CATSegHead(num_classes=2, embed_dims=48, num_heads=4, num_layers=1, window_size=4,
                      text_guidance_channels=16, spatial_guidance_channels=16,
                      text_guidance_proj_channels=12, spatial_guidance_proj_channels=4,
                      decoder_channels=(40, 24), decoder_guidance_channels=(12, 6),
                      decoder_guidance_proj_channels=(0, 4), attention_type='full',
                      pad_len=5).eval()
    inputs = CATSegHeadInputs(
        torch.randn(2, 16, 8, 12), F.normalize(torch.randn(2, 3, 1, 16), dim=-1),
        Guidance(torch.randn(2, 16, 8, 12),
                 (torch.randn(2, 12, 16, 24), torch.randn(2, 6, 32, 48))))
    with torch.no_grad():
        plain, cpu = (head(inputs, EXECUTION_PLANS[name]) for name in ('plain', 'cpu'))
    assert plain.shape == (2, 3, 32, 48)
    torch.testing.assert_close(cpu, plain, atol=1e-5, rtol=1e-5)


def test_a_negative_pad_size_divisor_is_named():
    cfg = catseg_config_from_fixture(fixture_config(DEFAULT_PARITY_DIR))
    with parameters_on_meta(), pytest.raises(
            ValueError, match=r'pad_size_divisor=-1 must be >= 0 \(0 or 1: no padding\)'):
        MODELS.build(dict(cfg, pad_size_divisor=-1))
