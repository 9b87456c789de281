# Paper (arXiv v1) CAT-Seg: CLIP ViT-B/16 + ResNet-101 guidance, COCO-Stuff, 4 x 1 image, 80k
# iterations, AdamW 2e-4 (model) / 2e-6 (CLIP), weight decay 1e-4 (paper §4.1). The released v1
# code trained ResNet-101 at x0.01 (vitb_r101_384.yaml SOLVER.BACKBONE_MULTIPLIER).
# Checkpoint: https://huggingface.co/hamacojr/CAT-Seg/resolve/main/model_final_base.pth
_base_ = [
    '../_base_/models/catseg_paper.py',
    '../_base_/datasets/coco_stuff164k_384x384.py',
    '../_base_/schedules/catseg_adamw_80k.py',
    'mmseg::_base_/default_runtime.py',
]
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'guidance.backbone': dict(lr_mult=0.01)}))
