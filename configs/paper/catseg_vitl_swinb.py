# Paper (arXiv v1) CAT-Seg: CLIP ViT-L/14@336 + Swin-B (ImageNet-21k, 384 px, window 12) guidance:
# stage 3 for aggregation, stages 1-2 for the decoder. The released v1 code froze Swin-B.
_base_ = ['./catseg_vitb_r101.py']
model = dict(
    backbone=dict(arch='vit-l14-336', img_size=336),
    text_encoder=dict(arch='vit-l14-336'),
    guidance=dict(backbone=dict(_delete_=True, type='mmpretrain.SwinTransformer', arch='base',
                                img_size=384, window_size=12, out_indices=(0, 1, 2))),
    decode_head=dict(text_guidance_channels=768, spatial_guidance_channels=512,
                     decoder_guidance_channels=(256, 128)))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'guidance.backbone': dict(lr_mult=0.0)}))
