# A small camera + LiDAR BEVFusion on the generated synthetic world that trains on CPU: six
# 128x352 images (the 800x450 synthetic frames scaled ~0.48 and cropped) -> ResNet-18 ->
# GeneralizedLSSFPN (64 channels, stride 8: 16 x 44) -> depth-aware LSS (59 bins of 1 m over
# [1, 60) m, 0.4 m cells, stride-2 convs to 0.8 m) and 10-sweep LiDAR -> 0.2 x 0.2 x 0.4 m voxels
# -> a 3-stage sparse encoder (stride 4: 0.8 m) on the same 128 x 128 grid over +-51.2 m ->
# ConvFuser -> narrow SECOND + FPN (stride 8 output) -> slim CenterHead.
_base_ = ["./bevfusion_det_fusion_nuscenes.py"]
data_root = "data/synthetic/"
point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
voxel_size = [0.2, 0.2, 0.4]
grid_size = [512, 512, 20]
out_size_factor = 8
post_center_range = [-61.2, -61.2, -10.0, 61.2, 61.2, 10.0]
point_features = ["x", "y", "z", "intensity", "time_lag"]
class_names = ["car", "truck", "trailer", "bus", "construction_vehicle", "bicycle", "motorcycle",
               "pedestrian", "traffic_cone", "barrier"]
image_size = [128, 352]
feature_size = [16, 44]
camera_channels = 32
lidar_channels = 128  # 64 sparse-encoder channels x 2 height cells
fused_channels = 128
norm_momentum = 0.1
model = dict(
    data_preprocessor=dict(voxel_layer=dict(voxel_size=voxel_size, point_cloud_range=point_cloud_range,
                                            max_num_points=10, max_voxels=[60000, 80000])),
    encoders=dict(
        camera=dict(
            backbone=dict(type="ResNet", depth=18, out_indices=[1, 2, 3]),
            neck=dict(type="GeneralizedLSSFPN", in_channels=[128, 256, 512], out_channels=64, num_outs=2),
            vtransform=dict(in_channels=64, out_channels=camera_channels, image_size=image_size,
                            feature_size=feature_size, dbound=[1.0, 60.0, 1.0], xbound=[-51.2, 51.2, 0.4],
                            ybound=[-51.2, 51.2, 0.4], zbound=[-10.0, 10.0, 20.0], downsample=2,
                            depth_channels=32)),
        lidar=dict(backbone=dict(
            _delete_=True, type="SparseEncoder", in_channels=5, sparse_shape=[21, 512, 512], output_channels=64,
            order=["conv", "norm", "act"], norm_cfg=dict(type="BN1d", eps=1e-3, momentum=norm_momentum),
            base_channels=16, encoder_channels=[[16], [32, 32], [64, 64]],
            encoder_paddings=[[1], [1, 1], [[0, 1, 1], 1]], block_type="conv_module",
            sparseconv_backend="native"))),
    fuser=dict(in_channels=[camera_channels, lidar_channels], out_channels=fused_channels),
    decoder=dict(
        backbone=dict(in_channels=fused_channels, out_channels=[64, 128], layer_nums=[3, 3], layer_strides=[2, 2],
                      norm_cfg=dict(type="BN", eps=1e-3, momentum=norm_momentum)),
        neck=dict(in_channels=[64, 128], out_channels=[128, 128], upsample_strides=[1, 2],
                  norm_cfg=dict(type="BN", eps=1e-3, momentum=norm_momentum))),
    heads=dict(object=dict(
        in_channels=256, share_conv_channel=64, norm_cfg=dict(type="BN2d", momentum=norm_momentum),
        separate_head=dict(type="SeparateHead", head_conv=32, final_kernel=1, init_bias=-2.19),
        bbox_coder=dict(out_size_factor=out_size_factor, voxel_size=voxel_size[:2], pc_range=point_cloud_range[:2],
                        post_center_range=post_center_range),
        train_cfg=dict(grid_size=grid_size, voxel_size=voxel_size, out_size_factor=out_size_factor,
                       point_cloud_range=point_cloud_range),
        test_cfg=dict(out_size_factor=out_size_factor, voxel_size=voxel_size[:2], pc_range=point_cloud_range[:2],
                      post_center_limit_range=post_center_range))),
)
meta_keys = ("sample_idx", "aug", "img_aug", "lidar2img", "cam2img", "lidar2cam", "img_aug_matrix",
             "lidar_aug_matrix")
train_pipeline = [
    dict(type="LoadMultiViewImages"),
    dict(type="ImageAug3D", final_dim=image_size, resize_lim=[0.44, 0.52], bot_pct_lim=[0.0, 0.0],
         rot_lim=[-5.4, 5.4], rand_flip=True, is_train=True),
    dict(type="ImageNormalize"),
    dict(type="GlobalRotScaleTrans", rot_range=[-0.3925, 0.3925], scale_ratio_range=[0.95, 1.05],
         translation_std=[0.0, 0.0, 0.0]),
    dict(type="RandomFlip3D", flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectNameFilter", classes=class_names),
    dict(type="PointShuffle"),
    dict(type="PointsSelectFeatures", features=point_features),
    dict(type="LidarAugMatrix"),
    dict(type="PackDetInputs", meta_keys=meta_keys),
]
test_pipeline = [
    dict(type="LoadMultiViewImages"),
    dict(type="ImageAug3D", final_dim=image_size, resize_lim=[0.48, 0.48], bot_pct_lim=[0.0, 0.0]),
    dict(type="ImageNormalize"),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="PointsSelectFeatures", features=point_features),
    dict(type="LidarAugMatrix"),
    dict(type="PackDetInputs", meta_keys=meta_keys),
]
train_dataloader = dict(batch_size=2, num_workers=1, persistent_workers=True,
                        dataset=dict(data_root=data_root, ann_file="nuscenes_infos_train.pkl", pipeline=train_pipeline,
                                     load_sweeps=9, with_cameras=True))
val_dataloader = dict(batch_size=1, num_workers=1,
                      dataset=dict(data_root=data_root, ann_file="nuscenes_infos_val.pkl", pipeline=test_pipeline,
                                   load_sweeps=9, with_cameras=True))
test_dataloader = val_dataloader
val_evaluator = dict(type="NuScenesMetric", data_root=data_root, version="v1.0-synthetic", eval_set="synthetic_val")
test_evaluator = val_evaluator
lr = 2e-3
max_epochs = 20
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [
    dict(type="OneCycleLR", eta_max=lr, pct_start=0.4, div_factor=10, final_div_factor=1e3,
         anneal_strategy="cos", by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=5, max_keep_ckpts=2))
