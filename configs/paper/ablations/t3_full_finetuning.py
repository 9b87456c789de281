# v1 Table 3: full fine-tuning of both CLIP encoders.
_base_ = ['../catseg_vitb_r101.py']
model = dict(finetune_policy='full')
