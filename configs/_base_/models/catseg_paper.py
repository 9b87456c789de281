# CAT-Seg as described in the paper (arXiv:2303.11797 v1) and released with it (official
# KU-CVLAB/CAT-Seg @ ceaaad8, configs/vitb_r101_384.yaml; model_final_base.pth loads strictly):
# CLIP ViT-B/16 + ResNet-101. Guidance from a separate ImageNet backbone on its own 384x384 view
# (§3.3-3.4), the 80 ImageNet prompt templates with one cost channel each (§4.1), names "a, b"
# averaged over their synonyms, per-token residual in the dense last CLIP block, no class padding
# or top-k, fine-tuning of the image encoder's attention and positional embedding with the text
# encoder frozen (§3.5, Fig. 9). docs/variants.md compares it with the release.
_base_ = ['./catseg_release.py']
model = dict(
    backbone=dict(dense_residual='token', guidance_layers=()),  # guidance comes from ResNet
    text_encoder=dict(templates='imagenet80', synonym_rule='average'),
    guidance=dict(
        _delete_=True,
        type='CATSegBackboneGuidance',
        # The views arrive in the model's (CLIP's) normalisation; the guidance renormalises them.
        clip_mean={{_base_.data_preprocessor.mean}},
        clip_std={{_base_.data_preprocessor.std}},
        # detectron2's build_resnet_backbone with OUT_FEATURES res2-res4: no res5 is built;
        # STRIDE_IN_1X1 False is style 'pytorch'; FrozenBN norms (its statistics are buffers).
        # conv2_x (256, 1/4), conv3_x (512, 1/8), conv4_x (1024, 1/16) at 384 px.
        backbone=dict(type='mmpretrain.ResNet', depth=101, num_stages=3, strides=(1, 2, 2),
                      dilations=(1, 1, 1), out_indices=(0, 1, 2), style='pytorch',
                      norm_cfg=dict(type='CATSegFrozenBatchNorm2d')),
        img_size=384),
    decode_head=dict(
        num_prompts=80,
        spatial_guidance_channels=1024,
        decoder_guidance_channels=(512, 256),
        pad_len=0),                   # v1 aggregates every class (no padding, no top-k)
    finetune_policy='attention')
custom_imports = dict(imports=['cat_seg', 'mmpretrain.models'], allow_failed_imports=False)
