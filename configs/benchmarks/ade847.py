# ADE20K-Full validation with 847 classes, prepared by
# tools/dataset_converters/ade20k_847.py (16-bit labels, 65535 = ignore).
_base_ = ['./_sliding.py']
test_dataloader = dict(
    batch_size=1, num_workers=2, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ADE20K847Dataset', data_root='data/ade/ADE20K_847',
                 data_prefix=dict(img_path='images/validation',
                                  seg_map_path='annotations/validation'),
                 pipeline={{_base_.test_pipeline}}))
test_evaluator = dict(type='CATSegIoUMetric', iou_metrics=['mIoU'], ignore_index=65535)
