# Paper (arXiv v1) CAT-Seg on OpenCLIP ViT-bigG/14 (LAION-2B) + Swin-B guidance; text guidance 1280.
_base_ = ['./catseg_vitl_swinb.py']
model = dict(
    backbone=dict(arch='vit-g14'),
    text_encoder=dict(arch='vit-g14'),
    decode_head=dict(text_guidance_channels=1280))
