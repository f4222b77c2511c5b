# Argoverse 2 motion-forecasting scenarios (parquet + map JSON per scenario folder), one sample
# per target: the AV (planning) and the focal / scored tracks (prediction), in the target's
# frame at "now" (perception/planning/motion_dataset.py). The collate is named with its scope
# ("perception.motion_collate"): mmengine looks collate functions up in its root registry.
data_root = "data/av2/motion-forecasting/"
motion_feature_cfg = dict(history_frames=10, history_stride=2, future_steps=60, max_agents=32, max_polylines=64,
                          points_per_polyline=10, piece_length=20.0)
train_dataloader = dict(
    batch_size=32, num_workers=0, sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="perception.motion_collate"),
    dataset=dict(type="MotionForecastingDataset", data_root=data_root, split="train", targets=["ego", "scored"],
                 feature_cfg=motion_feature_cfg, now_offsets=[0, -10, -20, -30]))
val_dataloader = dict(
    batch_size=32, num_workers=0, sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="perception.motion_collate"),
    dataset=dict(type="MotionForecastingDataset", data_root=data_root, split="val", targets=["ego", "scored"],
                 feature_cfg=motion_feature_cfg, now_offsets=[0], test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type="MotionForecastingMetric", k=6, miss_threshold=2.0)
test_evaluator = val_evaluator
