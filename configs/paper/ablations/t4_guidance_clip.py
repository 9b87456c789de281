# v1 Table 4: embedding guidance from the CLIP image encoder itself (dense output for
# aggregation, blocks 4 and 8 upsampled for the decoder, as the release does) instead of ResNet-101.
_base_ = ['../catseg_vitb_r101.py']
model = dict(
    backbone=dict(guidance_layers=(3, 7)),
    guidance=dict(_delete_=True, type='CATSegCLIPGuidance', in_channels=768,
                  out_channels=(256, 128)),
    decode_head=dict(spatial_guidance_channels=512, decoder_guidance_channels=(256, 128)))
