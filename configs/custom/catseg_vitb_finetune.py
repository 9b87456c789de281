# Fine-tune the CAT-Seg release (CLIP ViT-B/16) on your own images and classes, from the official
# weights; README "Fine-tuning on your own classes". A template: copy it, or inherit it and set
# the loaders' data_root. Data under data_root in mmseg's layout: img_dir/{train,val}/*.jpg,
# ann_dir/{train,val}/*.png (8-bit masks of label ids, 255 = ignore) and classes.txt, one class
# name per line (line 1 names id 0).
_base_ = [
    '../_base_/models/catseg_release.py',
    # The release's pipelines and loaders; only the dataset is replaced below.
    '../_base_/datasets/coco_stuff164k_384x384.py',
    '../_base_/schedules/catseg_adamw_80k.py',
    # mmseg's runtime; ours in '../_base_/runtime_tensorboard.py' adds TensorBoard logs.
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['cat_seg'], allow_failed_imports=False)
data_root = 'data/my_dataset'
dataset = dict(type='CATSegCustomDataset', data_root=data_root, classes_file='classes.txt')
train_dataloader = dict(
    batch_size=4,   # the release's 4 GPUs x 1 image on one GPU; with N GPUs use 4 // N
    dataset=dict(**dataset,
                 data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train')))
val_dataloader = dict(
    dataset=dict(**dataset, data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val')))
test_dataloader = val_dataloader
# mIoU as the benchmarks report it (mean over classes present in the ground truth), and mmseg's.
val_evaluator = dict(type='CATSegIoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

# The official release checkpoint (KU-CVLAB/CAT-Seg README), downloaded once into
# $TORCH_HOME/hub/checkpoints and converted on loading by CATSegOfficialCheckpointHook.
load_from = 'https://huggingface.co/spaces/hamacojr/CAT-Seg-weights/resolve/main/model_base.pth'
custom_hooks = [dict(type='CATSegVocabularyHook'), dict(type='CATSegOfficialCheckpointHook')]

# A short schedule: the release's optimiser and cosine decay over 2000 iterations instead of
# 80k, validating and keeping the best checkpoint every 500.
max_iters = 2000
train_cfg = dict(max_iters=max_iters, val_interval=500)
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=0.0, by_epoch=False,
                        begin=0, end=max_iters)]
default_hooks = dict(checkpoint=dict(interval=500, max_keep_ckpts=1, save_best='mIoU',
                                     rule='greater'))
