# CAT-Seg CVPR 2024 release architecture on CLIP OpenCLIP ViT-bigG/14 (LAION-2B), trained on COCO-Stuff-171,
# 4 GPUs x 1 image, 80k iterations.
# No official weights exist for this size.
_base_ = ['./_base_/models/catseg_release_vitg.py', './_base_/catseg_coco_stuff_training.py']
