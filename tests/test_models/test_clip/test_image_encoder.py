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


@pytest.mark.parametrize('kwargs,error,message', [
    (dict(arch='vit-b32'), ValueError, r"arch='vit-b32' is not one of \['vit-b16'"),
    (dict(arch={'embed_dims': 64}), ValueError, r"missing \['num_layers'"),
    (dict(arch=dict(TINY, act='relu')), ValueError, r"arch\['act'\]='relu' is not one of"),
    (dict(arch=TINY, guidance_layers=(3,)), ValueError, r'guidance_layers \[3\] are outside'),
    (dict(arch=TINY, dense_residual='mean'), ValueError, "dense_residual='mean' is not one of"),
    (dict(arch=TINY, img_size=100), ValueError, 'img_size=100 is not a multiple of the patch'),
    (dict(arch=dict(TINY, num_heads=3)), ValueError, r"arch\['num_heads'\]=3 must divide"),
    (dict(arch=7), TypeError, 'arch must be a name or a dict'),
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
