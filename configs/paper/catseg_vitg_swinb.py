# Paper (arXiv v1) CAT-Seg on OpenCLIP ViT-bigG/14 (LAION-2B) + Swin-B guidance; text guidance
# 1280 (official README at ceaaad8: vitl_swinb_384.yaml with CLIP_PRETRAINED "ViT-G"). The v1
# code builds OpenCLIP at 336 px, so the stored positional table is 24x24 + 1 ('vit-g14-336').
# Checkpoint: https://huggingface.co/hamacojr/CAT-Seg/resolve/main/model_final_giant.pth
_base_ = ['./catseg_vitl_swinb.py']
model = dict(
    backbone=dict(arch='vit-g14-336'),
    text_encoder=dict(arch='vit-g14-336'),
    decode_head=dict(text_guidance_channels=1280))
