# CenterPoint on Argoverse 2 (sensor dataset, the 26 competition categories): 0.1 m voxels over
# +-102.4 m (AV2 annotates to 150 m; the evaluator's default range is 150 m, so far boxes are
# missed), keyframe + 1 sweep, five size-grouped tasks, scored by av2.evaluation.detection.
#   python tools/create_data.py av2 --root data/av2/sensor --split train ... (see README)
#   python tools/create_data.py gt-database --infos data/av2/sensor/av2_infos_train.pkl \
#       --data-root data/av2/sensor --load-sweeps 1 --class-mapping av2
_base_ = ["../_base_/datasets/av2.py", "../_base_/models/centerpoint.py",
          "../_base_/schedules/onecycle.py", "../_base_/default_runtime.py"]
data_root = "data/av2/sensor/"
point_cloud_range = [-102.4, -102.4, -3.0, 102.4, 102.4, 5.0]
voxel_size = [0.1, 0.1, 0.2]
grid_size = [2048, 2048, 40]
out_size_factor = 8
post_center_range = [-110.0, -110.0, -10.0, 110.0, 110.0, 10.0]
point_features = ["x", "y", "z", "intensity", "time_lag"]
tasks = [
    dict(num_class=1, class_names=["REGULAR_VEHICLE"]),
    dict(num_class=9, class_names=["LARGE_VEHICLE", "BUS", "BOX_TRUCK", "TRUCK", "VEHICULAR_TRAILER",
                                   "TRUCK_CAB", "SCHOOL_BUS", "ARTICULATED_BUS", "MESSAGE_BOARD_TRAILER"]),
    dict(num_class=4, class_names=["PEDESTRIAN", "BICYCLIST", "MOTORCYCLIST", "WHEELED_RIDER"]),
    dict(num_class=6, class_names=["BICYCLE", "MOTORCYCLE", "WHEELED_DEVICE", "WHEELCHAIR", "STROLLER", "DOG"]),
    dict(num_class=6, class_names=["BOLLARD", "CONSTRUCTION_CONE", "SIGN", "CONSTRUCTION_BARREL", "STOP_SIGN",
                                   "MOBILE_PEDESTRIAN_CROSSING_SIGN"]),
]
model = dict(
    data_preprocessor=dict(voxel_layer=dict(voxel_size=voxel_size, point_cloud_range=point_cloud_range,
                                            max_voxels=[160000, 200000])),
    pts_middle_encoder=dict(sparse_shape=[41, 2048, 2048]),
    pts_bbox_head=dict(
        tasks=tasks,
        bbox_coder=dict(out_size_factor=out_size_factor, voxel_size=voxel_size[:2],
                        pc_range=point_cloud_range[:2], post_center_range=post_center_range)),
    train_cfg=dict(pts=dict(grid_size=grid_size, voxel_size=voxel_size, out_size_factor=out_size_factor,
                            point_cloud_range=point_cloud_range)),
    test_cfg=dict(pts=dict(out_size_factor=out_size_factor, voxel_size=voxel_size[:2],
                           pc_range=point_cloud_range[:2], post_center_limit_range=post_center_range,
                           min_radius=[4, 12, 0.85, 0.85, 0.175])),
)
train_pipeline = [
    dict(type="GlobalRotScaleTrans", rot_range=[-0.78539816, 0.78539816],
         scale_ratio_range=[0.95, 1.05], translation_std=[0.5, 0.5, 0.5]),
    dict(type="RandomFlip3D", flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="PointShuffle"),
    dict(type="PointsSelectFeatures", features=point_features),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="PointsSelectFeatures", features=point_features),
    dict(type="PackDetInputs"),
]
train_dataloader = dict(batch_size=4, num_workers=4,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline, load_sweeps=1))
val_dataloader = dict(dataset=dict(data_root=data_root, pipeline=test_pipeline, load_sweeps=1))
test_dataloader = val_dataloader
val_evaluator = dict(type="AV2DetectionMetric", data_root=data_root, split="val")
test_evaluator = val_evaluator
