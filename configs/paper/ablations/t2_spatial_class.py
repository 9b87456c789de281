# v1 Table 2 (V): + spatial and class aggregation, without embedding guidance.
_base_ = ['../catseg_vitb_r101.py']
model = dict(decode_head=dict(spatial_guidance_channels=0, text_guidance_channels=0))
