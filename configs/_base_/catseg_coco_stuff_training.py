# Everything of a release training run but the model: COCO-Stuff-171 data, the 80k AdamW
# schedule, MMSeg's default runtime and the plugin import. Entry configs add a model base.
_base_ = [
    './datasets/coco_stuff164k_384x384.py',
    './schedules/catseg_adamw_80k.py',
    'mmseg::_base_/default_runtime.py',
]
custom_imports = dict(imports=['cat_seg'], allow_failed_imports=False)
