# CAT-Seg as described in the paper (arXiv:2303.11797 v1), CLIP ViT-B/16 + ResNet-101: guidance
# from a separate ImageNet backbone (§3.3-3.4), the 80 ImageNet prompt templates with one cost
# channel each (§4.1), per-token residual in the dense last CLIP block, fine-tuning of the image
# encoder's attention and positional embedding only with the text encoder frozen (§3.5, Fig. 9).
_base_ = ['./catseg_release.py']
model = dict(
    backbone=dict(dense_residual='token', guidance_layers=()),  # guidance comes from ResNet
    text_encoder=dict(templates='imagenet80'),
    guidance=dict(
        _delete_=True,
        type='CATSegBackboneGuidance',
        # ResNet-101: conv2_x (256, 1/4), conv3_x (512, 1/8), conv4_x (1024, 1/16) at 384 px.
        backbone=dict(type='mmpretrain.ResNet', depth=101, out_indices=(0, 1, 2),
                      norm_eval=True),
        img_size=384),
    decode_head=dict(
        num_prompts=80,
        spatial_guidance_channels=1024,
        decoder_guidance_channels=(512, 256)),
    finetune_policy='attention')
custom_imports = dict(imports=['cat_seg', 'mmpretrain.models'], allow_failed_imports=False)
