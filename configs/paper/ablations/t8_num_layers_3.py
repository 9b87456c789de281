# v1 Table 8: N_B = 3 aggregation layers (the paper's model uses 2).
_base_ = ['../catseg_vitb_r101.py']
model = dict(decode_head=dict(num_layers=3))
