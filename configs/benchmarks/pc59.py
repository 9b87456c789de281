# PC-59: PASCAL-Context validation in mmseg's layout (tools/dataset_converters/pascal_context.py).
_base_ = ['./_sliding.py']
test_dataloader = dict(dataset=dict(
    type='PascalContextDataset59', data_root='data/VOCdevkit/VOC2010',
    data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
    ann_file='ImageSets/SegmentationContext/val.txt'))
