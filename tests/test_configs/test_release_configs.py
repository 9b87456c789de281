"""Every release entry config builds its model (on the meta device: no memory for the weights)."""
import pytest
import torch
from mmengine.config import Config
from mmseg.registry import MODELS

from catseg_testing import REPO_ROOT

# (config, CLIP image tower width, CLIP blocks, cost-grid side)
RELEASE_CONFIGS = [
    ('catseg_vitb.py', 768, 12, 24),
    ('catseg_vitl.py', 1024, 24, 24),
    ('catseg_vith.py', 1280, 32, 24),
    ('catseg_vitg.py', 1664, 48, 24),
]


@pytest.mark.parametrize('name,width,blocks,grid', RELEASE_CONFIGS)
def test_release_config_builds(name, width, blocks, grid):
    cfg = Config.fromfile(str(REPO_ROOT / 'configs' / name))
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    backbone = model.backbone
    assert backbone.conv1.out_channels == width
    assert len(backbone.transformer.resblocks) == blocks
    assert backbone.img_size[0] // backbone.patch_size == grid
    assert all(i < blocks - 1 for i in backbone.guidance_layers)
    assert model.guidance.upsamplers[0].in_channels == width
    head = model.decode_head
    assert head.text_guidance_proj[0].in_features == model.text_encoder.text_projection.shape[1]
    assert (head.spatial_guidance_proj.conv.in_channels
            == model.text_encoder.text_projection.shape[1])
    assert cfg.train_cfg.max_iters == 80000 and cfg.train_dataloader.batch_size == 1
