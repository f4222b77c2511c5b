# nuScenes keyframes (infos from `tools/create_data.py nuscenes`), the ten detection classes.
dataset_type = "NuScenesDataset"
data_root = "data/nuscenes/"
class_names = ["car", "truck", "trailer", "bus", "construction_vehicle", "bicycle", "motorcycle",
               "pedestrian", "traffic_cone", "barrier"]
point_cloud_range = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]
train_pipeline = [
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectNameFilter", classes=class_names),
]
test_pipeline = [dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range)]
train_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file="nuscenes_infos_train.pkl",
                 load_sweeps=9, with_cameras=False, pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, ann_file="nuscenes_infos_val.pkl",
                 load_sweeps=9, with_cameras=False, pipeline=test_pipeline, test_mode=True),
)
test_dataloader = val_dataloader
