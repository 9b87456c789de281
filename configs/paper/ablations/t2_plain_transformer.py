# v1 Table 2 (III): + a plain linear-attention transformer over all pixel-class tokens jointly
# (no spatial/class split, no embedding guidance).
_base_ = ['../catseg_vitb_r101.py']
model = dict(decode_head=dict(layer_types=('joint',), spatial_guidance_channels=0,
                              text_guidance_channels=0))
