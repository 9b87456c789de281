# v1 Table 7: cost aggregation (CAT-Seg), CLIP fine-tuned: configs/paper/catseg_vitb_r101.py.
_base_ = ['../catseg_vitb_r101.py']
