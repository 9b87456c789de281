# v1 Tables 9/10: inference at the training resolution: the whole image resized to 384 px,
# one view, instead of the 640-px patch inference of appendix A.3. Evaluate it on a benchmark
# with tools/test.py --benchmark FILE --keep-test-cfg, which keeps this mode.
_base_ = ['../catseg_vitb_r101.py']
model = dict(test_cfg=dict(_delete_=True, mode='whole'))
