# CAT-Seg release model on OpenCLIP ViT-H/14 (LAION-2B); the official code cannot build it.
# Guidance blocks keep the release's relative depths (ViT-B [3, 7] of 12, ViT-L [7, 15] of 24:
# the ends of the first and second thirds): (10, 21) of 32. 336 px gives the 24x24 cost grid.
_base_ = ['./catseg_release.py']
model = dict(
    backbone=dict(arch='vit-h14', img_size=336, guidance_layers=(10, 21)),
    text_encoder=dict(arch='vit-h14'),
    guidance=dict(in_channels=1280),
    decode_head=dict(text_guidance_channels=1024, spatial_guidance_channels=1024))
