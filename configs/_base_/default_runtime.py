# Runtime defaults shared by every training / testing config (mmengine Runner keys).
# tools/train.py and tools/test.py build perception.engine.PerceptionRunner (atomic checkpoint
# writes, weights-only loads, CPU/GPU DDP); no `runner_type` is needed.
default_scope = "perception"
# dist_cfg.backend is chosen by device (nccl with CUDA, gloo on CPU) unless set here.
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
               dist_cfg=dict())
log_level = "INFO"
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=10),  # its lines carry the ETA
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type="DistSamplerSeedHook"),
    # malloc_trim(0) at epoch ends: without it glibc heap fragmentation grew a map training's
    # RSS by ~60 MB per epoch (perception/engine/malloc.py)
    heap_trim=dict(type="HeapTrimHook", interval=100),
)
# A config that sets its own custom_hooks replaces this list: keep these two in it.
# EMA of the weights (evaluated and saved with the checkpoint as `ema_state_dict`): add
#   dict(type="EMAHook", ema_type="ExponentialMovingAverage", momentum=0.0002, update_buffers=True, priority=49)
custom_hooks = [
    dict(type="LossCurveHook", filename="loss_curve.png"),  # <work_dir>/loss_curve.png
    dict(type="ProgressBarHook"),                            # tqdm bars on a TTY only
]
# Scalars (losses, lr, metrics) to <work_dir>/<timestamp>/vis_data/scalars.json and TensorBoard
# event files in the same folder: `tensorboard --logdir work_dirs/<exp>`.
visualizer = dict(type="Visualizer", vis_backends=[dict(type="LocalVisBackend"),
                                                  dict(type="TensorboardVisBackend")])
# Gradient clipping: optim_wrapper = dict(..., clip_grad=dict(max_norm=35, norm_type=2)) (see
# schedules/). Mixed precision: `tools/train.py --amp` (bf16 autocast on CPU and on bf16 GPUs,
# fp16 + dynamic loss scaling on older GPUs).
