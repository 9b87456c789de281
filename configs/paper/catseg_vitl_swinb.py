# Paper (arXiv v1) CAT-Seg: CLIP ViT-L/14@336 + Swin-B (ImageNet-22k, 384 px, window 12) guidance:
# stage 3 for aggregation, stages 1-2 for the decoder. The released v1 code builds Swin-B with
# three stages only and freezes it (vitl_swinb_384.yaml: SOLVER.BACKBONE_MULTIPLIER 0.0, i.e.
# requires_grad False, not an lr multiplier of 0).
# Checkpoint: https://huggingface.co/hamacojr/CAT-Seg/resolve/main/model_final_large.pth
_base_ = ['./catseg_vitb_r101.py']
model = dict(
    backbone=dict(arch='vit-l14-336', img_size=336),
    text_encoder=dict(arch='vit-l14-336'),
    guidance=dict(
        backbone=dict(
            _delete_=True, type='mmpretrain.SwinTransformer',
            # MODEL.SWIN: EMBED_DIM 128, DEPTHS [2, 2, 18], NUM_HEADS [4, 8, 16], WINDOW_SIZE 12,
            # DROP_PATH_RATE 0.3, PRETRAIN_IMG_SIZE 384; outputs res2-res4 through norm0-norm2.
            arch=dict(embed_dims=128, depths=(2, 2, 18), num_heads=(4, 8, 16)),
            img_size=384, window_size=12, drop_path_rate=0.3, out_indices=(0, 1, 2),
            pad_small_map=True),      # D2Swin pads maps smaller than a window, never shrinks
        frozen=('*', )),
    decode_head=dict(text_guidance_channels=768, spatial_guidance_channels=512,
                     decoder_guidance_channels=(256, 128)))
