# v1 Table 4: embedding guidance from Swin-B (ImageNet-21k, 384, window 12) with CLIP ViT-B:
# stage 3 guides aggregation, stages 1-2 the decoder.
_base_ = ['../catseg_vitb_r101.py']
model = dict(
    guidance=dict(backbone=dict(_delete_=True, type='mmpretrain.SwinTransformer', arch='base',
                                img_size=384, window_size=12, out_indices=(0, 1, 2))),
    decode_head=dict(spatial_guidance_channels=512, decoder_guidance_channels=(256, 128)))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'guidance.backbone': dict(lr_mult=0.0)}))
