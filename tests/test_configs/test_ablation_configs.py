"""configs/paper/ablations/: every config builds at real dimensions, a tiny-dimension version of
each trains one step, and each fine-tuning mode trains exactly its parameters."""
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmseg.registry import MODELS

from catseg_testing import REPO_ROOT, raw_batch, tiny_paper_config

ABLATIONS = REPO_ROOT / 'configs' / 'paper' / 'ablations'
PAPER_BASE = '../catseg_vitb_r101.py'
CONFIGS = sorted(p.name for p in ABLATIONS.glob('*.py'))

# Dimension-bearing overrides restated at the tiny model's dimensions (CLIP width 64, 2 blocks,
# output 32; ResNet/Swin stages of 8/16/32 channels at 16/8/4 px).
TINY_DIMENSIONS = {
    't4_guidance_clip.py': dict(
        backbone=dict(guidance_layers=(0, 1)),
        guidance=dict(in_channels=64, out_channels=(16, 8)),
        decode_head=dict(spatial_guidance_channels=32, decoder_guidance_channels=(16, 8))),
    't4_guidance_swinb.py': dict(
        guidance=dict(backbone=dict(arch=dict(_delete_=True, embed_dims=8, depths=[1, 1, 1],
                                              num_heads=[1, 1, 1]),
                                    img_size=64, window_size=2)),
        decode_head=dict(spatial_guidance_channels=32, decoder_guidance_channels=(16, 8))),
}
TINY_DIMENSIONS['t4_clip_guidance_stop_gradient.py'] = TINY_DIMENSIONS['t4_guidance_clip.py']


def build_on_meta(cfg, monkeypatch):
    """The segmentor with every parameter on the meta device (no memory, no weights).

    mmpretrain's backbones turn a ``torch.linspace`` of drop-path rates into floats with
    ``.item()``, which meta tensors cannot do: that one call is made on the CPU."""
    linspace = torch.linspace
    monkeypatch.setattr(torch, 'linspace',
                        lambda *args, **kwargs: linspace(*args, **{**kwargs, 'device': 'cpu'}))
    with torch.device('meta'):
        return MODELS.build(cfg)


def ablation_overrides(name: str) -> dict:
    """The model changes an ablation makes to the paper's ViT-B config (through its _base_
    chain), read from the config files themselves."""
    namespace: dict = {}
    exec((ABLATIONS / name).read_text(), namespace)   # our own config files: plain Python
    merged = Config(dict(model=dict()))
    for base in namespace['_base_']:
        if base != PAPER_BASE:
            merged.merge_from_dict(dict(model=ablation_overrides(Path(base).name)))
    merged.merge_from_dict(dict(model=namespace.get('model', {})))
    return merged.model.to_dict()


def tiny_ablation_model(name: str):
    cfg = Config(dict(model=tiny_paper_config().to_dict()))
    cfg.merge_from_dict(dict(model=ablation_overrides(name)))
    cfg.merge_from_dict(dict(model=TINY_DIMENSIONS.get(name, {})))
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


def test_every_table_has_its_configs():
    assert len(CONFIGS) == 23
    assert {name.split('_')[0] for name in CONFIGS} == {'t2', 't3', 't4', 't7', 't8', 't9', 't10'}


@pytest.mark.parametrize('name', CONFIGS)
def test_ablation_config_builds_at_real_dimensions(name, monkeypatch):
    """The whole segmentor on the meta device (no memory, no weights): every module and option
    of the config is accepted, and the policy selects parameters that exist."""
    cfg = Config.fromfile(str(ABLATIONS / name))
    model = build_on_meta(cfg.model, monkeypatch)
    assert type(model).__name__ == 'CATSeg'
    assert cfg.train_cfg.max_iters == 80000 and cfg.train_dataloader.batch_size == 1
    head, layer = model.decode_head, (model.decode_head.layers or [None])[0]
    expected = {
        't2_feature_aggregation_baseline.py': lambda: (head.feature_embed is not None
                                                       and len(head.layers) == 0),
        't2_cost_aggregation_baseline.py': lambda: (head.feature_embed is None
                                                    and len(head.layers) == 0),
        't2_plain_transformer.py': lambda: (layer.joint_agg is not None and layer.spatial_agg
                                            is None and layer.class_agg is None),
        't2_spatial_only.py': lambda: layer.class_agg is None and layer.joint_agg is None,
        't2_spatial_class.py': lambda: (head.spatial_guidance_proj is None
                                        and head.text_guidance_proj is None),
        't4_clip_guidance_stop_gradient.py': lambda: head.detach_cost,
        't4_guidance_swinb.py': lambda: type(model.guidance.backbone).__name__ == 'SwinTransformer',
        't9_training_resolution_inference.py': lambda: model.test_cfg == dict(mode='whole'),
        't10_no_upsampling_decoder.py': lambda: len(head.decoder.stages) == 0,
        **{f't8_num_layers_{n}.py': (lambda n=n: len(head.layers) == n) for n in range(1, 5)},
    }
    assert expected.get(name, lambda: layer.class_agg is not None)()


@pytest.mark.slow
@pytest.mark.parametrize('name', CONFIGS)
def test_tiny_ablation_trains_one_step(name):
    model = tiny_ablation_model(name).train()
    model.train_vocabulary = ['sky', 'grass', 'road']
    optim_wrapper = build_optim_wrapper(model, dict(type='OptimWrapper',
                                                    optimizer=dict(type='AdamW', lr=1e-3)))
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    log = model.train_step(raw_batch(sizes=((64, 64), (64, 64)), with_labels=True),
                           optim_wrapper)
    assert torch.isfinite(log['loss'])
    changed = [n for n, p in model.named_parameters()
               if n in before and not torch.equal(p, before[n])]
    assert any(n.startswith('decode_head.') for n in changed)
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(raw_batch(sizes=((64, 80),)), False)
        out = model.predict(data['inputs'], data['data_samples'], vocabulary=['sky', 'road'])
    assert out[0].pred_sem_seg.data.shape == (1, 64, 80)


ATTENTION = ('q_proj_weight', 'k_proj_weight', 'v_proj_weight', 'in_proj_bias',
             'out_proj.weight', 'out_proj.bias')


@pytest.mark.parametrize('name,patterns,count', [
    ('t3_frozen.py', (), 0),
    ('t3_vpt_deep.py', ('backbone.vpt_prompts',), 1),
    ('t3_attention.py', ('backbone.positional_embedding',
                         *(f'backbone.transformer.resblocks.*.attn.{p}' for p in ATTENTION)),
     1 + 12 * 6),
    # Every tensor of the image encoder: 8 + 12 blocks x 14 (the text encoder stays frozen).
    ('t3_full_finetuning.py', ('backbone.*',), 8 + 12 * 14),
])
def test_finetuning_modes_train_exactly_their_parameters(name, patterns, count, monkeypatch):
    """At real dimensions (meta device): the trainable CLIP parameters are exactly those matching
    the mode's name patterns, and how many there are."""
    model = build_on_meta(Config.fromfile(str(ABLATIONS / name)).model, monkeypatch)
    clip = [n for n, _ in model.named_parameters() if n.startswith(('backbone.', 'text_encoder.'))]
    expected = [n for n in clip if any(fnmatchcase(n, p) for p in patterns)]
    assert model.trainable_clip_parameters == expected
    assert len(expected) == count
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable & set(clip) == set(expected)
    if name == 't3_vpt_deep.py':   # 10 prompts for each of the 11 attention blocks
        assert model.backbone.vpt_prompts.shape == (11, 10, 768)


def test_vpt_prompts_leave_the_outputs_shape_and_default_unchanged():
    cfg = tiny_paper_config()
    torch.manual_seed(0)
    plain = MODELS.build(cfg.backbone)
    cfg.backbone.vpt_prompts = 3
    torch.manual_seed(0)
    prompted = MODELS.build(cfg.backbone)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a, b = plain(images), prompted(images)
        prompted.vpt_prompts.zero_()
        c = prompted(images)
    assert a.dense.shape == b.dense.shape == (2, 32, 4, 4)
    assert not torch.allclose(a.dense, b.dense)          # the prompts take part in attention
    assert not torch.allclose(a.dense, c.dense)          # even zero prompts are attended to
    with pytest.raises(ValueError, match='vpt_prompts=-1 must be >= 0'):
        MODELS.build({**cfg.backbone, 'vpt_prompts': -1})


@pytest.mark.parametrize('kwargs,message', [
    (dict(layer_types=('spatial', 'pixel')), "layer_types=('spatial', 'pixel') must be"),
    (dict(layer_types=()), 'layer_types=() must be a non-empty sequence'),
    (dict(aggregate='tokens'), "aggregate='tokens' is not one of"),
])
def test_bad_ablation_options_are_named(kwargs, message):
    cfg = tiny_paper_config()
    cfg.decode_head.update(kwargs)
    with pytest.raises(ValueError, match=message.replace('(', r'\(').replace(')', r'\)')):
        MODELS.build(cfg.decode_head)


def test_stop_gradient_keeps_clip_out_of_the_cost_path():
    """With detach_cost, CLIP learns only through the guidance: the image encoder (whose only
    use is the cost, guidance coming from the ResNet) gets no gradient, the text encoder gets
    one through the text guidance."""
    cfg = tiny_paper_config()
    cfg.decode_head.detach_cost = True
    cfg.finetune_policy = 'full'
    torch.manual_seed(0)
    model = MODELS.build(cfg).train()
    model.train_vocabulary = ['sky', 'grass', 'road']
    data = model.data_preprocessor(raw_batch(sizes=((64, 64),), with_labels=True), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    sum(losses.values()).backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert any(p.grad is not None for p in model.text_encoder.parameters())
    assert model.decode_head.cost_embed.conv.weight.grad is not None
