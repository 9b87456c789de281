# PAS-20: VOC 2012 validation, 20 classes, background ignored.
_base_ = ['./_sliding.py']
test_dataloader = dict(dataset=dict(
    type='PascalVOC20Dataset', data_root='data/VOCdevkit/VOC2012',
    data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
    ann_file='ImageSets/Segmentation/val.txt'))
