# Paper (arXiv v1) CAT-Seg on OpenCLIP ViT-H/14 (LAION-2B) + Swin-B guidance; text guidance 1024.
_base_ = ['./catseg_vitl_swinb.py']
model = dict(
    backbone=dict(arch='vit-h14'),
    text_encoder=dict(arch='vit-h14'),
    decode_head=dict(text_guidance_channels=1024))
