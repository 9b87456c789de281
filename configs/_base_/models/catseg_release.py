# CAT-Seg, CVPR 2024 release architecture (official KU-CVLAB/CAT-Seg @ 6d3a188, configs/vitb_384.yaml
# and cat_seg_model.py): guidance from CLIP's own blocks, one prompt template, q/v fine-tuning.
# Values for CLIP ViT-B/16; the entry configs override the CLIP-size dependent ones.
clip_size = (384, 384)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    # CLIP's normalisation on the 0-255 RGB scale (fixture README §2).
    mean=[122.7709383, 116.7460125, 104.09373615],
    std=[68.5005327, 66.6321579, 70.323163],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(384, 384))
model = dict(
    type='CATSeg',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='CATSegCLIPImageEncoder',
        arch='vit-b16',
        img_size=384,
        guidance_layers=(3, 7),       # official cat_seg_model.py: [3, 7] for ViT-B, [7, 15] for ViT-L
        dense_residual='cls',
        pretrained=None),             # path to OpenAI CLIP weights, see README "Weights"
    text_encoder=dict(
        type='CATSegCLIPTextEncoder',
        arch='vit-b16',
        templates='release',
        synonym_rule='first',
        pretrained=None),
    guidance=dict(
        type='CATSegCLIPGuidance',
        in_channels=768,              # CLIP width
        out_channels=(256, 128),      # DECODER_GUIDANCE_DIMS
        scale_factors=(2, 4)),
    decode_head=dict(
        type='CATSegHead',
        num_classes=171,              # unused by the architecture: the vocabulary is data
        embed_dims=128,               # HIDDEN_DIMS
        num_heads=4,
        num_layers=2,
        window_size=12,
        num_prompts=1,
        text_guidance_channels=512,   # TEXT_GUIDANCE_DIM
        spatial_guidance_channels=512,  # APPEARANCE_GUIDANCE_DIM
        guidance_proj_channels=128,
        decoder_channels=(64, 32),
        decoder_guidance_channels=(256, 128),
        decoder_guidance_proj_channels=(32, 16),
        pad_len=256,
        train_pool_size=(2, 2),       # POOLING_SIZES for training; eval.sh sets [1, 1]
        test_pool_size=(1, 1),
        loss_decode=dict(type='CATSegBCELoss', ignore_mode='negative', loss_weight=1.0)),
    finetune_policy='attention_qv',
    pad_size_divisor=32,
    train_cfg=dict(),
    # Validation during training runs on whole images (official config.yaml: SLIDING_WINDOW
    # False); the benchmark configs switch to the official sliding evaluation.
    test_cfg=dict(mode='whole'))
custom_hooks = [dict(type='CATSegVocabularyHook')]
