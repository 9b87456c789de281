# ADE20K-Full validation with 847 classes, prepared by
# tools/dataset_converters/ade20k_847.py (16-bit labels, 65535 = ignore).
_base_ = ['./_sliding.py']
test_dataloader = dict(dataset=dict(
    type='ADE20K847Dataset', data_root='data/ade/ADE20K_847',
    data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation')))
test_evaluator = dict(ignore_index=65535)
