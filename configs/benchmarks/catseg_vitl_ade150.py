# catseg_vitl.py's model on A-150 with the official sliding-window protocol (_sliding.py).
_base_ = ['../_base_/models/catseg_release_vitl.py', './ade150.py']
model = dict(test_cfg={{_base_.sliding_test_cfg}})
