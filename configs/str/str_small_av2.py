# STR "small" (~1 M parameters) on Argoverse 2 motion forecasting: AdamW, warm-up + cosine,
# iteration-based. Metrics: minADE_6, minFDE_6, MR_6 (2 m), brier-minFDE_6 (av2's functions)
# for the scored agents and the ego plan's L2.
_base_ = ["./motion_av2_data.py", "../_base_/models/str.py", "../_base_/default_runtime.py"]
lr = 1e-3
max_iters = 20000
optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=lr, betas=(0.9, 0.98), weight_decay=0.01),
                     clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(type="LinearLR", start_factor=0.05, by_epoch=False, begin=0, end=500),
    dict(type="CosineAnnealingLR", T_max=max_iters, eta_min=lr * 1e-2, by_epoch=False, begin=0, end=max_iters),
]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=max_iters // 4)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
default_hooks = dict(checkpoint=dict(type="CheckpointHook", interval=max_iters // 4, by_epoch=False, max_keep_ckpts=2),
                     logger=dict(type="LoggerHook", interval=50))
