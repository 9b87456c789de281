# v1 Table 10: without the upsampling decoder: the classifier runs on the aggregated 24x24 cost
# embedding and its logits are upsampled bilinearly; the guidance backbone gives only the
# aggregation stage (conv4_x).
_base_ = ['../catseg_vitb_r101.py']
model = dict(
    guidance=dict(backbone=dict(out_indices=(2,))),
    decode_head=dict(decoder_channels=(), decoder_guidance_channels=(),
                     decoder_guidance_proj_channels=()))
