# Argoverse 2 sensor dataset (infos from `tools/create_data.py av2`), AV2's own categories.
dataset_type = "AV2SensorDataset"
data_root = "data/av2/sensor/"
point_cloud_range = [-100.0, -100.0, -5.0, 100.0, 100.0, 5.0]
train_pipeline = [
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectRangeFilter", point_cloud_range=point_cloud_range),
]
test_pipeline = [dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range)]
train_dataloader = dict(
    batch_size=1,
    num_workers=2,
    sampler=dict(type="DefaultSampler", shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file="av2_infos_train.pkl",
                 load_sweeps=1, pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file="av2_infos_val.pkl",
                 load_sweeps=1, pipeline=test_pipeline, test_mode=True),
)
test_dataloader = val_dataloader
