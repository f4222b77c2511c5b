# BEVFusion BEV map segmentation, camera + LiDAR, nuScenes full setting: the detection fusion
# config's encoders, fuser and SECOND + FPN decoder (512 channels on the 180 x 180 grid of 0.6 m
# over +-54 m) with the BEVSegmentationHead in place of the CenterHead: the decoder map resampled
# (grid_sample) onto BEVFusion's +-50 m grid at 0.5 m (200 x 200), two 3x3 conv blocks, per-class
# sigmoid focal loss for drivable_area, ped_crossing, walkway, stop_line, carpark_area, divider.
# Targets are rasterized from the map expansion (data/nuscenes/maps/expansion) by
# LoadBEVSegmentation after the 3-D augmentations; scored by BEVFusion's mIoU protocol.
# (BEVFusion's own seg models put the decoder on +-51.2 m at 0.8 m; the grid transform takes any extent.)
_base_ = ["./bevfusion_det_fusion_nuscenes.py"]
data_root = "data/nuscenes/"
point_cloud_range = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]
point_features = ["x", "y", "z", "intensity", "time_lag"]
image_size = [256, 704]
map_classes = ["drivable_area", "ped_crossing", "walkway", "stop_line", "carpark_area", "divider"]
seg_grid = dict(x_range=[-50.0, 50.0], y_range=[-50.0, 50.0], resolution=0.5)
norm_momentum = 0.01
map_head = dict(type="BEVSegmentationHead", in_channels=512, input_range=[[-54.0, 54.0], [-54.0, 54.0]],
                grid=seg_grid, classes=map_classes, mid_channels=512, num_convs=2, loss="focal",
                norm_cfg=dict(type="BN2d", momentum=norm_momentum))
model = dict(heads=dict(_delete_=True, map=map_head))
bev_seg_target = dict(type="LoadBEVSegmentation", data_root=data_root, classes=map_classes,
                      x_range=seg_grid["x_range"], y_range=seg_grid["y_range"],
                      resolution=seg_grid["resolution"], line_width=1.0)
meta_keys = ("sample_idx", "aug", "bev_seg_aug_matrix", "img_aug", "lidar2img", "cam2img", "lidar2cam",
             "img_aug_matrix", "lidar_aug_matrix")
train_pipeline = [
    dict(type="LoadMultiViewImages"),
    dict(type="ImageAug3D", final_dim=image_size, resize_lim=[0.38, 0.55], bot_pct_lim=[0.0, 0.0],
         rot_lim=[-5.4, 5.4], rand_flip=True, is_train=True),
    dict(type="ImageNormalize"),
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
    dict(type="LoadMultiViewImages"),
    dict(type="ImageAug3D", final_dim=image_size, resize_lim=[0.48, 0.48], bot_pct_lim=[0.0, 0.0]),
    dict(type="ImageNormalize"),
    bev_seg_target,
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="PointsSelectFeatures", features=point_features),
    dict(type="LidarAugMatrix"),
    dict(type="PackDetInputs", meta_keys=meta_keys),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type="BEVSegMetric", classes=map_classes)
test_evaluator = val_evaluator
