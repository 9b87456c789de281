# v1 Table 2 (IV): + spatial aggregation only (no class aggregation, no embedding guidance).
_base_ = ['../catseg_vitb_r101.py']
model = dict(decode_head=dict(layer_types=('spatial',), spatial_guidance_channels=0,
                              text_guidance_channels=0))
