# A tiny CAT-Seg (random weights, 64-px CLIP input, 4x4 cost grid) on a synthetic dataset in
# mmseg's img_dir/ann_dir layout (cat_seg.datasets.synthetic.write_synthetic_dataset). It inherits
# the real release model and schedule configs and shrinks only the dimensions.
_base_ = [
    '../_base_/models/catseg_release.py',
    '../_base_/schedules/catseg_adamw_80k.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['cat_seg'], allow_failed_imports=False)
# Other data: override each dataloader's own copy, e.g. `--cfg-options
# train_dataloader.dataset.data_root=DIR val_dataloader.dataset.data_root=DIR
# test_dataloader.dataset.data_root=DIR`, the form tests/test_tools/test_train_test.py uses
# (test_train_writes_checkpoints_and_validates). `--cfg-options data_root=DIR` changes nothing:
# the dataset dicts below copied the value when this file was read.
data_root = 'data/synthetic'
classes = ('sky', 'grass', 'road')
crop_size = (64, 64)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=64, num_layers=2, num_heads=2, patch_size=16, output_dims=32,
                  pretrain_img_size=32, mlp_ratio=4.0, act='quick_gelu'),
        img_size=64, guidance_layers=(0, 1)),
    text_encoder=dict(
        arch=dict(_delete_=True, embed_dims=64, num_layers=1, num_heads=2, output_dims=32, context_length=77,
                  vocab_size=49408, mlp_ratio=4.0, act='quick_gelu')),
    guidance=dict(in_channels=64, out_channels=(32, 16)),
    decode_head=dict(
        num_classes=3, embed_dims=32, num_heads=2, num_layers=1, window_size=2,
        text_guidance_channels=32, spatial_guidance_channels=32, guidance_proj_channels=16,
        decoder_channels=(32, 16), decoder_guidance_channels=(32, 16),
        decoder_guidance_proj_channels=(8, 4), pad_len=4),
    test_cfg=dict(mode='slide', crop_size=(64, 64), stride=(32, 32), resize_to=(96, 96)))
dataset = dict(type='BaseSegDataset', data_root=data_root, metainfo=dict(classes=classes),
               img_suffix='.jpg', seg_map_suffix='.png', reduce_zero_label=False)
train_dataloader = dict(
    batch_size=2, num_workers=0, sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(**dataset, data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
                 pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                           dict(type='RandomCrop', crop_size=crop_size),
                           dict(type='PackSegInputs')]))
val_dataloader = dict(
    batch_size=1, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(**dataset, data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
                 pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                           dict(type='PackSegInputs')]))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
train_cfg = dict(max_iters=4, val_interval=2)
optim_wrapper = dict(optimizer=dict(lr=1e-3), clip_grad=None)
param_scheduler = [dict(type='CosineAnnealingLR', T_max=4, eta_min=0.0, by_epoch=False)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
