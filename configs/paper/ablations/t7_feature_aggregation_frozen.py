# v1 Table 7: feature aggregation (the full aggregator on concatenated features), CLIP frozen.
_base_ = ['../catseg_vitb_r101.py']
model = dict(decode_head=dict(aggregate='features'), finetune_policy='frozen')
