# CAT-Seg CVPR 2024 release: CLIP ViT-L/14@336px (OpenAI), COCO-Stuff-171, 4 GPUs x 1 image, 80k
# iterations. Official cat_seg_model.py: CLIP input 336 px, guidance blocks [7, 15], width 1024;
# configs/vitl_336.yaml: text/appearance guidance dims 768.
# Released weights (official model_large.pth): configs/metafile.yaml, which tools/demo.py reads.
_base_ = ['./catseg_vitb.py']
model = dict(
    backbone=dict(arch='vit-l14-336', img_size=336, guidance_layers=(7, 15)),
    text_encoder=dict(arch='vit-l14-336'),
    guidance=dict(in_channels=1024),
    decode_head=dict(text_guidance_channels=768, spatial_guidance_channels=768))
