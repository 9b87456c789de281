# v1 Table 4: guidance from CLIP, with the gradient stopped at the cost volume: CLIP is
# fine-tuned only through the guidance.
_base_ = ['./t4_guidance_clip.py']
model = dict(decode_head=dict(detach_cost=True))
