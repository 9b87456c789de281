# CAT-Seg CVPR 2024 release: CLIP ViT-B/16 (OpenAI), COCO-Stuff-171, 4 GPUs x 1 image, 80k iterations.
# Released weights (official model_base.pth): configs/metafile.yaml, which tools/demo.py reads.
_base_ = [
    './_base_/models/catseg_release.py',
    './_base_/datasets/coco_stuff164k_384x384.py',
    './_base_/schedules/catseg_adamw_80k.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['cat_seg'], allow_failed_imports=False)
