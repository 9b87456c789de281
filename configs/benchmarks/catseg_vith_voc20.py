# catseg_vith.py's model on PAS-20 with the official sliding-window protocol (_sliding.py).
_base_ = ['../_base_/models/catseg_release_vith.py', './voc20.py']
model = dict(test_cfg={{_base_.sliding_test_cfg}})
