# BEVFusion LiDAR-only 3D detection, nuScenes full setting: the fusion config's LiDAR branch
# (0.075 m voxels, sparse encoder, 256 channels on the 180 x 180 grid) straight into the
# SECOND + FPN decoder and the CenterHead; no images are loaded.
_base_ = ["./bevfusion_det_fusion_nuscenes.py"]
lidar_channels = 256
point_cloud_range = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]
point_features = ["x", "y", "z", "intensity", "time_lag"]
class_names = ["car", "truck", "trailer", "bus", "construction_vehicle", "bicycle", "motorcycle",
               "pedestrian", "traffic_cone", "barrier"]
model = dict(encoders=dict(camera=None), fuser=None, decoder=dict(backbone=dict(in_channels=lidar_channels)))
train_pipeline = [
    dict(type="GlobalRotScaleTrans", rot_range=[-0.78539816, 0.78539816], scale_ratio_range=[0.9, 1.1],
         translation_std=[0.5, 0.5, 0.5]),
    dict(type="RandomFlip3D", flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectNameFilter", classes=class_names),
    dict(type="PointShuffle"),
    dict(type="PointsSelectFeatures", features=point_features),
    dict(type="LidarAugMatrix"),
    dict(type="PackDetInputs", meta_keys=("sample_idx", "aug", "lidar_aug_matrix")),
]
test_pipeline = [
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="PointsSelectFeatures", features=point_features),
    dict(type="PackDetInputs"),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline, with_cameras=False))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline, with_cameras=False))
test_dataloader = val_dataloader
