# CAT-Seg release model on CLIP ViT-L/14@336px (OpenAI). Official cat_seg_model.py: CLIP input
# 336 px, guidance blocks [7, 15], width 1024; configs/vitl_336.yaml: text/appearance guidance 768.
_base_ = ['./catseg_release.py']
model = dict(
    backbone=dict(arch='vit-l14-336', img_size=336, guidance_layers=(7, 15)),
    text_encoder=dict(arch='vit-l14-336'),
    guidance=dict(in_channels=1024),
    decode_head=dict(text_guidance_channels=768, spatial_guidance_channels=768))
