# v1 Table 2 (I): feature-aggregation baseline: tokens embed the concatenated image feature and
# class text embedding (no cost volume), no aggregation layers, then the upsampling decoder.
_base_ = ['../catseg_vitb_r101.py']
model = dict(decode_head=dict(aggregate='features', num_layers=0))
