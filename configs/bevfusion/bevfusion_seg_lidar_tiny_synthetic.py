# BEVFusion BEV map segmentation, LiDAR only, on the generated synthetic world: small enough to
# train on 2 CPU cores in minutes.  Keyframe + 1 sweep LiDAR -> 0.4 m voxels over +-51.2 m -> 3-stage
# sparse encoder (BEV stride 4: 64 x 64 cells of 1.6 m, 64 ch x 2 heights) -> SECOND + FPN (back to
# 1.6 m) -> BEVSegmentationHead resampled onto +-50 m at 1 m (100 x 100) for the six classes.
# Targets: LoadBEVSegmentation after the 3-D augmentations; scored by BEVFusion's mIoU protocol.
# The camera-only and camera + LiDAR configs inherit from this one (same decoder, head, budget).
_base_ = ["../_base_/datasets/synthetic.py", "../_base_/schedules/onecycle.py", "../_base_/default_runtime.py"]
data_root = "data/synthetic/"
point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
voxel_size = [0.4, 0.4, 0.4]
point_features = ["x", "y", "z", "intensity", "time_lag"]
map_classes = ["drivable_area", "ped_crossing", "walkway", "stop_line", "carpark_area", "divider"]
bev_range = [[-51.2, 51.2], [-51.2, 51.2]]  # metres covered by the decoder's BEV map
seg_grid = dict(x_range=[-50.0, 50.0], y_range=[-50.0, 50.0], resolution=1.0)
norm_momentum = 0.1  # short schedules: BN statistics must keep up with the weights
lidar_channels = 128  # 64 sparse-encoder channels x 2 height cells
decoder_in_channels = 128
model = dict(
    type="BEVFusion",
    data_preprocessor=dict(
        type="BEVFusionDataPreprocessor", voxel_type="hard",
        voxel_layer=dict(type="HardVoxelizer", max_num_points=10, voxel_size=voxel_size,
                         point_cloud_range=point_cloud_range, max_voxels=[40000, 60000])),
    encoders=dict(
        lidar=dict(
            voxel_encoder=dict(type="HardSimpleVFE", num_features=5),
            backbone=dict(
                type="SparseEncoder", in_channels=5, sparse_shape=[21, 256, 256], output_channels=64,
                order=["conv", "norm", "act"], norm_cfg=dict(type="BN1d", eps=1e-3, momentum=norm_momentum),
                base_channels=16, encoder_channels=[[16], [32, 32], [64, 64]],
                encoder_paddings=[[1], [1, 1], [[0, 1, 1], 1]], block_type="conv_module",
                sparseconv_backend="native"))),
    decoder=dict(
        backbone=dict(type="SECOND", in_channels=decoder_in_channels, out_channels=[64, 128], layer_nums=[2, 2],
                      layer_strides=[1, 2], norm_cfg=dict(type="BN", eps=1e-3, momentum=norm_momentum)),
        neck=dict(type="SECONDFPN", in_channels=[64, 128], out_channels=[64, 64], upsample_strides=[1, 2],
                  norm_cfg=dict(type="BN", eps=1e-3, momentum=norm_momentum), use_conv_for_no_stride=True)),
    heads=dict(map=dict(type="BEVSegmentationHead", in_channels=128, input_range=bev_range, grid=seg_grid,
                        classes=map_classes, mid_channels=64, num_convs=2, loss="focal",
                        norm_cfg=dict(type="BN2d", momentum=norm_momentum))),
)
bev_seg_target = dict(type="LoadBEVSegmentation", data_root=data_root, classes=map_classes,
                      x_range=seg_grid["x_range"], y_range=seg_grid["y_range"],
                      resolution=seg_grid["resolution"], line_width=1.0)
meta_keys = ("sample_idx", "aug", "bev_seg_aug_matrix")
train_pipeline = [
    dict(type="GlobalRotScaleTrans", rot_range=[-0.3925, 0.3925], scale_ratio_range=[0.95, 1.05],
         translation_std=[0.0, 0.0, 0.0]),
    dict(type="RandomFlip3D", flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
    bev_seg_target,
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="PointShuffle"),
    dict(type="PointsSelectFeatures", features=point_features),
    dict(type="PackDetInputs", meta_keys=meta_keys),
]
test_pipeline = [
    bev_seg_target,
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="PointsSelectFeatures", features=point_features),
    dict(type="PackDetInputs", meta_keys=meta_keys),
]
train_dataloader = dict(batch_size=2, num_workers=1, persistent_workers=True,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline, load_sweeps=1,
                                     with_cameras=False))
val_dataloader = dict(batch_size=1, num_workers=1,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline, load_sweeps=1, with_cameras=False))
test_dataloader = val_dataloader
val_evaluator = dict(type="BEVSegMetric", classes=map_classes)
test_evaluator = val_evaluator
lr = 2e-3
# 24 epochs (360 iterations) for all three modalities: at 16 the rare crossing class had not
# converged in every seed and camera + LiDAR only tied LiDAR-only (0.357 / 0.357 held-out mean);
# at 24 fusion wins every seed (0.402 vs 0.389, README).
max_epochs = 24
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [
    dict(type="OneCycleLR", eta_max=lr, pct_start=0.3, div_factor=10, final_div_factor=1e3,
         anneal_strategy="cos", by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
