"""The paper (arXiv v1) variant: every config builds, a tiny version trains, policies are exact."""
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmseg.registry import MODELS

from catseg_testing import REPO_ROOT, raw_batch, tiny_paper_config

PAPER = REPO_ROOT / 'configs' / 'paper'


@pytest.mark.parametrize('name,guidance_type,clip_size', [
    ('catseg_vitb_r101.py', 'ResNet', 384),
    ('catseg_vitl_swinb.py', 'SwinTransformer', 336),
    ('catseg_vith_swinb.py', 'SwinTransformer', 336),
    ('catseg_vitg_swinb.py', 'SwinTransformer', 336),
])
def test_paper_config_builds(name, guidance_type, clip_size):
    """CLIP towers on the meta device (ViT-bigG does not fit in a test's memory), the guidance
    backbone for real: its stages must have the channels the head expects."""
    cfg = Config.fromfile(str(PAPER / name)).model
    with torch.device('meta'):
        backbone = MODELS.build(cfg.backbone)
        text_encoder = MODELS.build(cfg.text_encoder)
    guidance = MODELS.build(cfg.guidance).eval()
    assert type(guidance.backbone).__name__ == guidance_type
    assert backbone.dense_residual == 'token' and backbone.guidance_layers == ()
    assert backbone.img_size == (clip_size, clip_size)
    assert text_encoder.num_prompts == 80 == cfg.decode_head.num_prompts
    assert text_encoder.text_projection.shape[1] == cfg.decode_head.text_guidance_channels
    with torch.no_grad():
        out = guidance(torch.zeros(1, 3, clip_size, clip_size), None)
    assert out.spatial.shape[1:] == (cfg.decode_head.spatial_guidance_channels, 24, 24)
    assert [g.shape[1:] for g in out.decoder] == [
        (c, 24 * 2 ** (i + 1), 24 * 2 ** (i + 1))
        for i, c in enumerate(cfg.decode_head.decoder_guidance_channels)]
    assert cfg.finetune_policy == 'attention'


def tiny_paper_model():
    """The tiny synthetic-data model switched to the paper variant with a tiny ResNet."""
    torch.manual_seed(0)
    return MODELS.build(tiny_paper_config())


def test_tiny_paper_model_trains_with_the_paper_policy():
    model = tiny_paper_model().train()
    model.train_vocabulary = ['sky', 'grass', 'road']
    names = set(model.trainable_clip_parameters)
    blocks = len(model.backbone.transformer.resblocks)
    assert names == {'backbone.positional_embedding'} | {
        f'backbone.transformer.resblocks.{i}.attn.{p}' for i in range(blocks)
        for p in ('q_proj_weight', 'k_proj_weight', 'v_proj_weight', 'in_proj_bias',
                  'out_proj.weight', 'out_proj.bias')}
    optim_wrapper = build_optim_wrapper(model, dict(type='OptimWrapper',
                                                    optimizer=dict(type='AdamW', lr=1e-3)))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    log = model.train_step(raw_batch(sizes=((64, 64), (64, 64)), with_labels=True),
                           optim_wrapper)
    assert torch.isfinite(log['loss'])
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert any(n.startswith('guidance.backbone.') for n in changed)
    assert 'backbone.positional_embedding' in changed
    assert not any(n.startswith('text_encoder.') for n in changed)
