"""Build the full CAT-Seg segmentor of a parity fixture directory (README of the shared fixture)."""
import pytest
from mmseg.registry import MODELS

from cat_seg.checkpoint import convert_official_state_dict


def catseg_config_from_fixture(config: dict) -> dict:
    """Our model config for the official hyper-parameters in a fixture's ``config.json``."""
    clip, agg = config['clip'], config['aggregator']
    up1, up2 = config['upsample1'], config['upsample2']
    image_arch = dict(
        embed_dims=clip['vision_width'], num_layers=clip['vision_layers'],
        num_heads=clip['vision_heads'], patch_size=clip['vision_patch_size'],
        output_dims=clip['embed_dim'], pretrain_img_size=clip['image_resolution'],
        mlp_ratio=4.0, act='quick_gelu')
    text_arch = dict(
        embed_dims=clip['transformer_width'], num_layers=clip['transformer_layers'],
        num_heads=clip['transformer_heads'], output_dims=clip['embed_dim'],
        context_length=clip['context_length'], vocab_size=clip['vocab_size'],
        mlp_ratio=4.0, act='quick_gelu')
    return dict(
        type='CATSeg',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=config['clip_pixel_mean'],
                               std=config['clip_pixel_std'], bgr_to_rgb=True, pad_val=0,
                               seg_pad_val=config['ignore_value'],
                               size_divisor=config['size_divisibility']),
        backbone=dict(type='CATSegCLIPImageEncoder', arch=image_arch,
                      img_size=config['clip_resolution'][0],
                      guidance_layers=tuple(config['layer_indexes']), dense_residual='cls'),
        text_encoder=dict(type='CATSegCLIPTextEncoder', arch=text_arch,
                          templates=list(config['prompt_templates']), synonym_rule='first'),
        guidance=dict(type='CATSegCLIPGuidance', in_channels=up1['in_channels'],
                      out_channels=(up1['out_channels'], up2['out_channels']),
                      scale_factors=(up1['stride'], up2['stride'])),
        decode_head=dict(
            type='CATSegHead', num_classes=2, embed_dims=agg['hidden_dim'],
            num_heads=agg['nheads'], num_layers=agg['num_layers'],
            window_size=agg['window_size'], num_prompts=len(config['prompt_templates']),
            text_guidance_channels=agg['text_guidance_dim'],
            spatial_guidance_channels=agg['appearance_guidance_dim'],
            guidance_proj_channels=agg['appearance_guidance_proj_dim'],
            decoder_channels=tuple(agg['decoder_dims']),
            decoder_guidance_channels=tuple(agg['decoder_guidance_dims']),
            decoder_guidance_proj_channels=tuple(agg['decoder_guidance_proj_dims']),
            pad_len=agg['pad_len'],
            train_pool_size=tuple(config['pooling_sizes']['train_forward']),
            test_pool_size=tuple(config['pooling_sizes']['whole_eval']),
            ignore_index=config['ignore_value'],
            loss_decode=dict(type='CATSegBCELoss', ignore_mode='negative')),
        pad_size_divisor=config['size_divisibility'],
        test_cfg=dict(mode='whole'))


@pytest.fixture
def parity_model(parity_fixture):
    """The fixture's model with its converted official weights, in eval mode."""
    model = MODELS.build(catseg_config_from_fixture(parity_fixture.config))
    incompatible = model.load_state_dict(convert_official_state_dict(parity_fixture.state_dict))
    assert not incompatible.missing_keys and not incompatible.unexpected_keys, incompatible
    return model.eval()
