# BEVFusion camera + LiDAR 3D detection, nuScenes full setting (MIT BEVFusion's recipe with this
# stack's parts): six 256x704 images -> ResNet-50 -> GeneralizedLSSFPN -> depth-aware LSS (118
# depth bins over [1, 60) m, BEV 0.3 m cells pooled, then a stride-2 conv stack to 0.6 m) and
# 10-sweep LiDAR -> 0.075 m voxels -> sparse encoder (stride 8: 0.6 m) on the same 180 x 180 grid
# over +-54 m -> ConvFuser -> SECOND + FPN -> CenterHead (six task groups).  The image backbone
# starts from random weights unless `load_from` / an init_cfg Pretrained checkpoint is given
# (mmdet and torchvision ResNet state dicts load by name).
_base_ = ["../_base_/datasets/nuscenes.py", "../_base_/schedules/onecycle.py", "../_base_/default_runtime.py"]
data_root = "data/nuscenes/"
point_cloud_range = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]
voxel_size = [0.075, 0.075, 0.2]
grid_size = [1440, 1440, 40]
out_size_factor = 8
post_center_range = [-61.2, -61.2, -10.0, 61.2, 61.2, 10.0]
point_features = ["x", "y", "z", "intensity", "time_lag"]
class_names = ["car", "truck", "trailer", "bus", "construction_vehicle", "bicycle", "motorcycle",
               "pedestrian", "traffic_cone", "barrier"]
image_size = [256, 704]
feature_size = [32, 88]  # stride 8
bev_bounds = dict(xbound=[-54.0, 54.0, 0.3], ybound=[-54.0, 54.0, 0.3], zbound=[-10.0, 10.0, 20.0])
dbound = [1.0, 60.0, 0.5]
camera_channels = 80
lidar_channels = 256  # 128 sparse-encoder channels x 2 height cells
fused_channels = 256
norm_momentum = 0.01
lidar_encoder = dict(
    type="SparseEncoder", in_channels=5, sparse_shape=[41, 1440, 1440], output_channels=128,
    order=["conv", "norm", "act"], norm_cfg=dict(type="BN1d", eps=1e-3, momentum=norm_momentum),
    encoder_channels=[[16, 16, 32], [32, 32, 64], [64, 64, 128], [128, 128]],
    encoder_paddings=[[0, 0, 1], [0, 0, 1], [0, 0, [0, 1, 1]], [1, 1]],
    block_type="basicblock", sparseconv_backend="native")
decoder = dict(
    backbone=dict(type="SECOND", in_channels=fused_channels, out_channels=[128, 256], layer_nums=[5, 5],
                  layer_strides=[1, 2], norm_cfg=dict(type="BN", eps=1e-3, momentum=norm_momentum)),
    neck=dict(type="SECONDFPN", in_channels=[128, 256], out_channels=[256, 256], upsample_strides=[1, 2],
              norm_cfg=dict(type="BN", eps=1e-3, momentum=norm_momentum), use_conv_for_no_stride=True))
object_head = dict(
    type="CenterHead", in_channels=512,
    tasks=[dict(num_class=1, class_names=["car"]),
           dict(num_class=2, class_names=["truck", "construction_vehicle"]),
           dict(num_class=2, class_names=["bus", "trailer"]),
           dict(num_class=1, class_names=["barrier"]),
           dict(num_class=2, class_names=["motorcycle", "bicycle"]),
           dict(num_class=2, class_names=["pedestrian", "traffic_cone"])],
    common_heads=dict(reg=[2, 2], height=[1, 2], dim=[3, 2], rot=[2, 2], vel=[2, 2]),
    share_conv_channel=64, norm_cfg=dict(type="BN2d", momentum=norm_momentum),
    bbox_coder=dict(type="CenterPointBBoxCoder", post_center_range=post_center_range, max_num=500,
                    score_threshold=0.1, out_size_factor=out_size_factor, voxel_size=voxel_size[:2],
                    pc_range=point_cloud_range[:2], code_size=9),
    loss_cls=dict(type="GaussianFocalLoss", reduction="mean"),
    loss_bbox=dict(type="L1Loss", reduction="mean", loss_weight=0.25), norm_bbox=True,
    train_cfg=dict(grid_size=grid_size, voxel_size=voxel_size, out_size_factor=out_size_factor, dense_reg=1,
                   gaussian_overlap=0.1, max_objs=500, min_radius=2, point_cloud_range=point_cloud_range,
                   code_weights=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2]),
    test_cfg=dict(post_center_limit_range=post_center_range, max_per_img=500, max_pool_nms=False,
                  min_radius=[4, 12, 10, 1, 0.85, 0.175], score_threshold=0.1, out_size_factor=out_size_factor,
                  voxel_size=voxel_size[:2], pc_range=point_cloud_range[:2], nms_type="rotate",
                  pre_max_size=1000, post_max_size=83, nms_thr=0.2))
model = dict(
    type="BEVFusion",
    data_preprocessor=dict(
        type="BEVFusionDataPreprocessor", voxel_type="hard",
        voxel_layer=dict(type="HardVoxelizer", max_num_points=10, voxel_size=voxel_size,
                         point_cloud_range=point_cloud_range, max_voxels=[120000, 160000])),
    encoders=dict(
        camera=dict(
            backbone=dict(type="ResNet", depth=50, out_indices=[1, 2, 3], frozen_stages=-1, norm_eval=False),
            neck=dict(type="GeneralizedLSSFPN", in_channels=[512, 1024, 2048], out_channels=256, num_outs=2),
            vtransform=dict(type="DepthLSSTransform", in_channels=256, out_channels=camera_channels,
                            image_size=image_size, feature_size=feature_size, dbound=dbound, downsample=2,
                            **bev_bounds)),
        lidar=dict(voxel_encoder=dict(type="HardSimpleVFE", num_features=5),
                   backbone=lidar_encoder)),
    fuser=dict(type="ConvFuser", in_channels=[camera_channels, lidar_channels], out_channels=fused_channels),
    decoder=decoder,
    heads=dict(object=object_head),
)
meta_keys = ("sample_idx", "aug", "img_aug", "lidar2img", "cam2img", "lidar2cam", "img_aug_matrix",
             "lidar_aug_matrix")
train_pipeline = [
    dict(type="LoadMultiViewImages"),
    dict(type="ImageAug3D", final_dim=image_size, resize_lim=[0.38, 0.55], bot_pct_lim=[0.0, 0.0],
         rot_lim=[-5.4, 5.4], rand_flip=True, is_train=True),
    dict(type="ImageNormalize"),
    dict(type="GlobalRotScaleTrans", rot_range=[-0.78539816, 0.78539816], scale_ratio_range=[0.9, 1.1],
         translation_std=[0.5, 0.5, 0.5]),
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
train_dataloader = dict(batch_size=4, num_workers=4,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline, load_sweeps=9,
                                     with_cameras=True))
val_dataloader = dict(dataset=dict(data_root=data_root, pipeline=test_pipeline, load_sweeps=9, with_cameras=True))
test_dataloader = val_dataloader
val_evaluator = dict(type="NuScenesMetric", data_root=data_root, version="v1.0-trainval", eval_set="val")
test_evaluator = val_evaluator
