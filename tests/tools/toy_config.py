# A tiny iteration-based run of the toy regressor (tests/tools/toy_components.py): 8 iterations,
# batch 2, a checkpoint and a validation every 4 iterations, losses logged every iteration.
_base_ = ["../../configs/_base_/default_runtime.py"]
custom_imports = dict(imports=["toy_components"], allow_failed_imports=False)

model = dict(type="ToyRegressor", in_channels=4, step_delay=0.0)
data_preprocessor = dict(type="BaseDataPreprocessor")
test_pipeline = [dict(type="ToyPackInputs")]
train_dataloader = dict(batch_size=2, num_workers=0,
                        sampler=dict(type="DefaultSampler", shuffle=True),
                        dataset=dict(type="ToyDataset", num_samples=16, seed=0, pipeline=test_pipeline))
val_dataloader = dict(batch_size=4, num_workers=0,
                      sampler=dict(type="DefaultSampler", shuffle=False),
                      dataset=dict(type="ToyDataset", num_samples=8, seed=1, pipeline=test_pipeline,
                                   test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type="ToyMetric")
test_evaluator = val_evaluator
custom_hooks = [dict(type="LossCurveHook"), dict(type="ProgressBarHook"), dict(type="ToyStateHashHook")]

optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=0.05, weight_decay=0.0),
                     clip_grad=dict(max_norm=10.0))
param_scheduler = [dict(type="CosineAnnealingLR", T_max=8, eta_min=1e-3, by_epoch=False, begin=0, end=8)]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=8, val_interval=4)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")

default_hooks = dict(logger=dict(type="LoggerHook", interval=1),
                     checkpoint=dict(type="CheckpointHook", interval=4, by_epoch=False, max_keep_ckpts=3))
log_processor = dict(by_epoch=False, window_size=1)
randomness = dict(seed=0, deterministic=True)
