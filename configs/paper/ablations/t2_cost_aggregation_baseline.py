# v1 Table 2 (II): cost-aggregation baseline: the embedded cost volume straight into the
# upsampling decoder, no aggregation layers.
_base_ = ['../catseg_vitb_r101.py']
model = dict(decode_head=dict(num_layers=0))
