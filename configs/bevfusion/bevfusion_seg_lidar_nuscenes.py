# BEVFusion BEV map segmentation, LiDAR only, nuScenes full setting: the fusion seg config's LiDAR
# branch (0.075 m voxels, sparse encoder, 256 channels on the 180 x 180 grid) straight into the
# decoder and the BEVSegmentationHead; no images are loaded.
_base_ = ["./bevfusion_seg_fusion_nuscenes.py"]
lidar_channels = 256
point_cloud_range = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]
point_features = ["x", "y", "z", "intensity", "time_lag"]
map_classes = ["drivable_area", "ped_crossing", "walkway", "stop_line", "carpark_area", "divider"]
bev_seg_target = dict(type="LoadBEVSegmentation", data_root="data/nuscenes/", classes=map_classes,
                      x_range=[-50.0, 50.0], y_range=[-50.0, 50.0], resolution=0.5, line_width=1.0)
meta_keys = ("sample_idx", "aug", "bev_seg_aug_matrix", "lidar_aug_matrix")
model = dict(encoders=dict(camera=None), fuser=None, decoder=dict(backbone=dict(in_channels=lidar_channels)))
train_pipeline = [
    dict(type="GlobalRotScaleTrans", rot_range=[-0.78539816, 0.78539816], scale_ratio_range=[0.9, 1.1],
         translation_std=[0.5, 0.5, 0.5]),
    dict(type="RandomFlip3D", flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
    bev_seg_target,
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="PointShuffle"),
    dict(type="PointsSelectFeatures", features=point_features),
    dict(type="LidarAugMatrix"),
    dict(type="PackDetInputs", meta_keys=meta_keys),
]
test_pipeline = [
    bev_seg_target,
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="PointsSelectFeatures", features=point_features),
    dict(type="PackDetInputs", meta_keys=meta_keys),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline, with_cameras=False))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline, with_cameras=False))
test_dataloader = val_dataloader
