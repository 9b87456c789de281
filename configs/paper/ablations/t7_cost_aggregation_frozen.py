# v1 Table 7: cost aggregation (CAT-Seg), CLIP frozen.
_base_ = ['../catseg_vitb_r101.py']
model = dict(finetune_policy='frozen')
