# v1 Table 3: CLIP frozen.
_base_ = ['../catseg_vitb_r101.py']
model = dict(finetune_policy='frozen')
