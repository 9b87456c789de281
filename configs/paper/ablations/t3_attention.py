# v1 Table 3: attention layers (and position embedding) of the image encoder: the paper's
# choice, i.e. configs/paper/catseg_vitb_r101.py.
_base_ = ['../catseg_vitb_r101.py']
