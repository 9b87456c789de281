# v1 Table 2 (VI): + embedding guidance: the full model, i.e. configs/paper/catseg_vitb_r101.py.
_base_ = ['../catseg_vitb_r101.py']
