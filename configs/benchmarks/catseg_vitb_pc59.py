# catseg_vitb.py's model on PC-59 with the official sliding-window protocol (_sliding.py).
_base_ = ['../_base_/models/catseg_release.py', './pc59.py']
model = dict(test_cfg={{_base_.sliding_test_cfg}})
