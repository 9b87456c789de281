# v1 Tables 9/10: inference at the training resolution: the whole image resized to 384 px,
# one view, instead of the 640-px patch inference of appendix A.3.
_base_ = ['../catseg_vitb_r101.py']
model = dict(test_cfg=dict(_delete_=True, mode='whole'))
keep_model_test_cfg = True   # tools/test.py --benchmark keeps this mode, not the sliding protocol
