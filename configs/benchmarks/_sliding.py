# The official evaluation protocol (KU-CVLAB/CAT-Seg eval.sh + cat_seg_model.py): shortest edge
# 640 (at most 2560), 640x640 resize, 384 windows at stride 256 plus a global view, pooling [1, 1].
# Each benchmark file adds its dataset; configs/benchmarks/catseg_<model>_<benchmark>.py sets the
# model's test_cfg to sliding_test_cfg, and tools/test.py --benchmark and the inferencer read it
# from here.
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['cat_seg'], allow_failed_imports=False)
# The metric needs only the argmax: return_probs=False does not keep (T, H, W) probabilities at
# full resolution (same labels, memory flat in T; see InferenceSettings).
sliding_test_cfg = dict(mode='slide', crop_size=(384, 384), stride=(256, 256),
                        resize_to=(640, 640), with_global_view=True, return_probs=False)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeShortestEdge', scale=640, max_size=2560),
    dict(type='LoadCATSegAnnotations'),
    dict(type='PackSegInputs'),
]
test_dataloader = dict(
    batch_size=1, num_workers=2, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(pipeline=test_pipeline))
test_evaluator = dict(type='CATSegIoUMetric', iou_metrics=['mIoU'])
test_cfg = dict(type='TestLoop')
