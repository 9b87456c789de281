# CAT-Seg CVPR 2024 release architecture on CLIP ViT-L/14@336px (OpenAI), trained on COCO-Stuff-171,
# 4 GPUs x 1 image, 80k iterations.
# Released weights (official model_large.pth): configs/metafile.yaml, which tools/demo.py reads.
_base_ = ['./_base_/models/catseg_release_vitl.py', './_base_/catseg_coco_stuff_training.py']
