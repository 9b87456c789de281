# CAT-Seg release model on OpenCLIP ViT-bigG/14 (LAION-2B); the official code cannot build it.
# Guidance blocks at the same relative depths as the release (see catseg_release_vith.py):
# (15, 31) of 48.
_base_ = ['./catseg_release.py']
model = dict(
    backbone=dict(arch='vit-g14', img_size=336, guidance_layers=(15, 31)),
    text_encoder=dict(arch='vit-g14'),
    guidance=dict(in_channels=1664),
    decode_head=dict(text_guidance_channels=1280, spatial_guidance_channels=1280))
