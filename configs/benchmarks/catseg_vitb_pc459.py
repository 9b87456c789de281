# catseg_vitb.py's model on PC-459 with the official sliding-window protocol (_sliding.py).
_base_ = ['../_base_/models/catseg_release.py', './pc459.py']
model = dict(test_cfg={{_base_.sliding_test_cfg}})
