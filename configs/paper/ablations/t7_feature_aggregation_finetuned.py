# v1 Table 7: feature aggregation, CLIP fine-tuned (attention layers, as the paper's model).
_base_ = ['../catseg_vitb_r101.py']
model = dict(decode_head=dict(aggregate='features'))
