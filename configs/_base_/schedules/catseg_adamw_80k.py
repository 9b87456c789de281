# Official training recipe (KU-CVLAB/CAT-Seg configs/config.yaml, train_net.py): AdamW lr 2e-4,
# CLIP lr x0.01, weight decay 1e-4 (0 for norms and embeddings), cosine to 0 with no warm-up,
# 80k iterations, full-model gradient-norm clipping at 0.01, validation every 5000 iterations.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.01, norm_type=2),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        custom_keys={
            'backbone': dict(lr_mult=0.01),
            'text_encoder': dict(lr_mult=0.01),
            'text_encoder.token_embedding': dict(lr_mult=0.01, decay_mult=0.0),
        }))
# The dense last CLIP block computes no attention, so its (trainable) query projection gets no
# gradient; DistributedDataParallel must be told.
find_unused_parameters = True
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=80000, eta_min=0.0, by_epoch=False, begin=0, end=80000)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=80000, val_interval=5000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # mmengine's CheckpointHook, saving atomically: a killed run leaves no torn checkpoint.
    checkpoint=dict(type='CATSegCheckpointHook', by_epoch=False, interval=5000),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
