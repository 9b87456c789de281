# PC-459: PASCAL-Context validation with all 459 classes, prepared by
# tools/dataset_converters/pascal_context.py (16-bit labels, 65535 = ignore).
_base_ = ['./_sliding.py']
test_dataloader = dict(dataset=dict(
    type='PascalContext459Dataset', data_root='data/VOCdevkit/VOC2010',
    data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassContext459'),
    ann_file='ImageSets/SegmentationContext459/val.txt'))
test_evaluator = dict(ignore_index=65535)
