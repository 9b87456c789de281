# v1 Table 3: full fine-tuning of the CLIP image encoder (v1 keeps the text encoder frozen).
_base_ = ['../catseg_vitb_r101.py']
model = dict(finetune_policy='full_image')
