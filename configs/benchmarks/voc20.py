# PAS-20: VOC 2012 validation, 20 classes, background ignored.
_base_ = ['./_sliding.py']
test_dataloader = dict(
    batch_size=1, num_workers=2, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='PascalVOC20Dataset', data_root='data/VOCdevkit/VOC2012',
                 data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
                 ann_file='ImageSets/Segmentation/val.txt',
                 pipeline={{_base_.test_pipeline}}))
test_evaluator = dict(type='CATSegIoUMetric', iou_metrics=['mIoU'])
