# BEVFusion BEV map segmentation, camera + LiDAR, on the generated synthetic world: the LiDAR-only
# tiny seg config (same LiDAR branch, decoder, head, data and budget) plus a camera branch: six
# 88x288 images (800x450 frames scaled 0.36, bottom crop: the ground below the horizon, which is
# all a map class can be) -> ResNet-18 stages 1-3 -> GeneralizedLSSFPN (64 ch, stride 4: 22 x 72,
# so ~20 feature rows see the ground instead of ~7 at stride 8) -> depth-aware LSS (49 bins of 1 m
# over [1, 50) m, 0.8 m cells, stride-2 convs to 1.6 m: the LiDAR grid) -> ConvFuser with the
# LiDAR BEV map.
_base_ = ["./bevfusion_seg_lidar_tiny_synthetic.py"]
image_size = [88, 288]
feature_size = [22, 72]
resize_train = [0.34, 0.38]
resize_test = [0.36, 0.36]
camera_channels = 64
lidar_channels = 128
fused_channels = 128
norm_momentum = 0.1
camera_vtransform = dict(
    type="DepthLSSTransform", in_channels=64, out_channels=camera_channels, image_size=image_size,
    feature_size=feature_size, dbound=[1.0, 50.0, 1.0], xbound=[-51.2, 51.2, 0.8], ybound=[-51.2, 51.2, 0.8],
    zbound=[-10.0, 10.0, 20.0], downsample=2, depth_channels=32)
model = dict(
    encoders=dict(camera=dict(
        backbone=dict(type="ResNet", depth=18, num_stages=3, strides=[1, 2, 2], out_indices=[0, 1, 2],
                      norm_eval=False),
        neck=dict(type="GeneralizedLSSFPN", in_channels=[64, 128, 256], out_channels=64, num_outs=2),
        vtransform=camera_vtransform)),
    fuser=dict(type="ConvFuser", in_channels=[camera_channels, lidar_channels], out_channels=fused_channels),
    decoder=dict(backbone=dict(in_channels=fused_channels)),
)
data_root = "data/synthetic/"
point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
point_features = ["x", "y", "z", "intensity", "time_lag"]
map_classes = ["drivable_area", "ped_crossing", "walkway", "stop_line", "carpark_area", "divider"]
seg_grid = dict(x_range=[-50.0, 50.0], y_range=[-50.0, 50.0], resolution=1.0)
bev_seg_target = dict(type="LoadBEVSegmentation", data_root=data_root, classes=map_classes,
                      x_range=seg_grid["x_range"], y_range=seg_grid["y_range"],
                      resolution=seg_grid["resolution"], line_width=1.0)
meta_keys = ("sample_idx", "aug", "bev_seg_aug_matrix", "img_aug", "lidar2img", "cam2img", "lidar2cam",
             "img_aug_matrix", "lidar_aug_matrix")
train_pipeline = [
    dict(type="LoadMultiViewImages"),
    dict(type="ImageAug3D", final_dim=image_size, resize_lim=resize_train, bot_pct_lim=[0.0, 0.0],
         rot_lim=[-5.4, 5.4], rand_flip=True, is_train=True),
    dict(type="ImageNormalize"),
    dict(type="GlobalRotScaleTrans", rot_range=[-0.3925, 0.3925], scale_ratio_range=[0.95, 1.05],
         translation_std=[0.0, 0.0, 0.0]),
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
    dict(type="ImageAug3D", final_dim=image_size, resize_lim=resize_test, bot_pct_lim=[0.0, 0.0]),
    dict(type="ImageNormalize"),
    bev_seg_target,
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="PointsSelectFeatures", features=point_features),
    dict(type="LidarAugMatrix"),
    dict(type="PackDetInputs", meta_keys=meta_keys),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline, with_cameras=True))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline, with_cameras=True))
test_dataloader = val_dataloader
