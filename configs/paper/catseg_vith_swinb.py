# Paper (arXiv v1) CAT-Seg on OpenCLIP ViT-H/14 (LAION-2B) + Swin-B guidance; text guidance 1024
# (official README at ceaaad8: vitl_swinb_384.yaml with CLIP_PRETRAINED "ViT-H"). The v1 code
# builds OpenCLIP at 336 px, so the stored positional table is 24x24 + 1 ('vit-h14-336').
# Checkpoint: https://huggingface.co/hamacojr/CAT-Seg/resolve/main/model_final_huge.pth
_base_ = ['./catseg_vitl_swinb.py']
model = dict(
    backbone=dict(arch='vit-h14-336'),
    text_encoder=dict(arch='vit-h14-336'),
    decode_head=dict(text_guidance_channels=1024))
