# STR "small" on synthetic AV2 motion scenarios (`tools/create_data.py synthetic --out
# data/synthetic_motion --scenes 40 --formats motion --no-images --sensor-duration 0.5`):
# trains in minutes on 2 CPU cores.  The synthetic scenarios of one town share one map.
# Each scenario has one AV and ~45 scored agents: ego_repeat=20 lists every ego target 20 times
# (~24 % of the training samples) so the planning targets are not drowned out.  Validation uses
# three "now"s per scenario (as tools/str_scaling.py does): 24 ego plans, ~1450 agents.
_base_ = ["./str_small_av2.py"]
data_root = "data/synthetic_motion/av2/motion-forecasting/"
max_iters = 1500
train_dataloader = dict(batch_size=64, dataset=dict(data_root=data_root, ego_repeat=20))
val_dataloader = dict(dataset=dict(data_root=data_root, now_offsets=[0, -10, -20]))
test_dataloader = val_dataloader
param_scheduler = [
    dict(type="LinearLR", start_factor=0.05, by_epoch=False, begin=0, end=100),
    dict(type="CosineAnnealingLR", T_max=max_iters, eta_min=1e-5, by_epoch=False, begin=0, end=max_iters),
]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(type="CheckpointHook", interval=max_iters, by_epoch=False, max_keep_ckpts=1))
