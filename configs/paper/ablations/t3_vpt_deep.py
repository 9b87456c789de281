# v1 Table 3: VPT-deep prompt tuning of the CLIP image encoder (10 prompts per block, our choice;
# the count is not stated in the paper), everything else of CLIP frozen.
_base_ = ['../catseg_vitb_r101.py']
model = dict(backbone=dict(vpt_prompts=10), finetune_policy='vpt')
