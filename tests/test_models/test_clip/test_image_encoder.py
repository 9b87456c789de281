import pytest
import torch
from open_clip.transformer import QuickGELU, VisionTransformer

from cat_seg.models import CATSegCLIPImageEncoder

TINY = dict(embed_dims=64, num_layers=3, num_heads=2, patch_size=16, output_dims=32,
            pretrain_img_size=64, mlp_ratio=4.0, act='quick_gelu')


def open_clip_tower():
    torch.manual_seed(0)
    return VisionTransformer(image_size=64, patch_size=16, width=64, layers=3, heads=2,
                             mlp_ratio=4.0, output_dim=32, act_layer=QuickGELU).eval()


def test_blocks_match_open_clip_with_its_packed_weights():
    tower = open_clip_tower()
    encoder = CATSegCLIPImageEncoder(TINY, img_size=64, guidance_layers=(0, 1)).eval()
    encoder.load_state_dict(tower.state_dict())     # packed in_proj_weight is split on load
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours = encoder(image)
        theirs = tower.forward_intermediates(image, indices=[0, 1], intermediates_only=True)
    for mine, reference in zip(ours.intermediates, theirs['image_intermediates']):
        torch.testing.assert_close(mine, reference, atol=1e-5, rtol=1e-5)
    assert ours.dense.shape == (2, 32, 4, 4)


def test_positional_table_is_resized_for_larger_inputs_and_non_square_grids_work():
    encoder = CATSegCLIPImageEncoder(TINY, img_size=128, guidance_layers=(2,))
    assert encoder.positional_table((8, 8)).shape == (65, 64)
    torch.testing.assert_close(encoder.positional_table((4, 4)), encoder.positional_embedding)
    feats = encoder(torch.randn(1, 3, 128, 96))
    assert feats.dense.shape == (1, 32, 8, 6) and feats.intermediates[0].shape == (1, 64, 8, 6)


def test_dense_residual_rules_differ_by_the_residual_only():
    torch.manual_seed(0)
    cls = CATSegCLIPImageEncoder(TINY, img_size=64, guidance_layers=(), dense_residual='cls')
    token = CATSegCLIPImageEncoder(TINY, img_size=64, guidance_layers=(), dense_residual='token')
    token.load_state_dict(cls.state_dict())
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(cls(image).dense, token(image).dense)
        # With the CLS token equal to every patch token both rules coincide.
        x = torch.randn(1, 1, 64).expand(1, 17, 64)
        block = cls.transformer.resblocks[-1]
        torch.testing.assert_close(cls._dense_block(block, x), token._dense_block(block, x))


def official_prompt_loop(encoder, image, prompts):
    """Dense features as the official VPT transformer computes them (third_party/model_vpt.py,
    PROMPT_DEPTH = len(prompts)): before each of the first PROMPT_DEPTH blocks the block's own
    prompts replace the tokens after CLS that the previous ones occupied; later blocks carry
    them; they are dropped after the last (dense) block."""
    x = encoder.conv1(image)
    grid = x.shape[-2:]
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([encoder.class_embedding.expand(x.shape[0], 1, -1), x], dim=1)
    x = encoder.ln_pre(x + encoder.positional_table(grid))
    blocks, length = encoder.transformer.resblocks, prompts.shape[1]
    for i, block in enumerate(blocks):
        if i < len(prompts):
            start = length + 1 if i > 0 else 1
            x = torch.cat([x[:, :1], prompts[i].expand(x.shape[0], -1, -1), x[:, start:]], dim=1)
        x = encoder._dense_block(block, x) if i == len(blocks) - 1 else block(x)
    x = torch.cat([x[:, :1], x[:, length + 1:]], dim=1)
    return encoder._to_map(encoder.ln_post(x) @ encoder.proj, grid)


@pytest.mark.parametrize('depth', [1, 2, 3])
def test_vpt_depth_follows_the_official_prompt_loop(depth):
    torch.manual_seed(0)
    encoder = CATSegCLIPImageEncoder(TINY, img_size=64, guidance_layers=(1,), vpt_prompts=2,
                                     vpt_depth=depth).eval()
    assert encoder.vpt_prompts.shape == (depth, 2, 64)
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = encoder(image)
        torch.testing.assert_close(feats.dense,
                                   official_prompt_loop(encoder, image, encoder.vpt_prompts))
    assert feats.intermediates[0].shape == (2, 64, 4, 4)


def test_prompts_of_the_last_block_change_nothing():
    """The release's PROMPT_DEPTH equal to the block count is the default depth (one less)."""
    torch.manual_seed(0)
    every = CATSegCLIPImageEncoder(TINY, img_size=64, guidance_layers=(), vpt_prompts=2,
                                   vpt_depth=3).eval()
    default = CATSegCLIPImageEncoder(TINY, img_size=64, guidance_layers=(), vpt_prompts=2).eval()
    state = every.state_dict()
    default.load_state_dict(dict(state, vpt_prompts=state['vpt_prompts'][:2]))
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(every(image).dense, default(image).dense)


@pytest.mark.parametrize('kwargs,error,message', [
    (dict(arch='vit-b32'), ValueError, r"arch='vit-b32' is not one of \['vit-b16'"),
    (dict(arch={'embed_dims': 64}), ValueError, r"missing \['num_layers'"),
    (dict(arch=dict(TINY, act='relu')), ValueError, r"arch\['act'\]='relu' is not one of"),
    (dict(arch=TINY, guidance_layers=(3,)), ValueError, r'guidance_layers \[3\] are outside'),
    (dict(arch=TINY, dense_residual='mean'), ValueError, "dense_residual='mean' is not one of"),
    (dict(arch=TINY, img_size=100), ValueError, 'img_size=100 is not a multiple of the patch'),
    (dict(arch=dict(TINY, num_heads=3)), ValueError, r"arch\['num_heads'\]=3 must divide"),
    (dict(arch=7), TypeError, 'arch must be a name or a dict'),
    (dict(arch=TINY, vpt_prompts=2, vpt_depth=4), ValueError,
     'vpt_depth=4 must be between 1 and the 3 blocks'),
    (dict(arch=TINY, vpt_prompts=2, vpt_depth=0), ValueError,
     'vpt_depth=0 must be between 1 and the 3 blocks'),
])
def test_bad_arguments(kwargs, error, message):
    kwargs.setdefault('img_size', 64)
    kwargs.setdefault('guidance_layers', ())
    with pytest.raises(error, match=message):
        CATSegCLIPImageEncoder(**kwargs)


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights file '.*nope.pth' does not exist"):
        CATSegCLIPImageEncoder(TINY, img_size=64, guidance_layers=(),
                               pretrained=str(tmp_path / 'nope.pth'))
