# PC-59: PASCAL-Context validation (mmseg layout of tools/dataset_converters/pascal_context.py).
_base_ = ['./_sliding.py']
test_dataloader = dict(
    batch_size=1, num_workers=2, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='PascalContextDataset59', data_root='data/VOCdevkit/VOC2010',
                 data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
                 ann_file='ImageSets/SegmentationContext/val.txt',
                 pipeline={{_base_.test_pipeline}}))
test_evaluator = dict(type='CATSegIoUMetric', iou_metrics=['mIoU'])
