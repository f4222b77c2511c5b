# MapTR-style vector map on nuScenes from LiDAR alone (MapTR's LiDAR setting: 10-sweep points,
# 0.1 m voxels, a CenterPoint-style sparse encoder + SECOND + FPN -> 40 x 80 BEV of 0.8 m), the
# full head (50 instance x 20 point queries, 256 channels, 6 layers, focal + point L1 +
# edge-direction losses) and MapTR's AdamW / cosine 24-epoch schedule.  Map range x in [-15, 15],
# y in [-30, 30] of the nuScenes LiDAR frame (y forward); needs infos with `location` and the
# map expansion pack (with_map=True).
_base_ = ["../_base_/datasets/nuscenes.py", "../_base_/schedules/cosine.py", "../_base_/default_runtime.py"]
custom_imports = dict(imports=["perception.transforms.map_gt", "perception.evaluation.map_metric"],
                      allow_failed_imports=False)
map_classes = ["divider", "ped_crossing", "boundary"]
map_range = [-15.0, -30.0, 15.0, 30.0]
point_cloud_range = [-16.0, -32.0, -5.0, 16.0, 32.0, 3.0]
voxel_size = [0.1, 0.1, 0.2]
num_points = 20
point_features = ["x", "y", "z", "intensity", "time_lag"]
model = dict(
    type="MapDetector",
    data_preprocessor=dict(
        type="Det3DDataPreprocessor", voxel_type="hard",
        voxel_layer=dict(type="HardVoxelizer", max_num_points=10, voxel_size=voxel_size,
                         point_cloud_range=point_cloud_range, max_voxels=[90000, 120000])),
    pts_voxel_encoder=dict(type="HardSimpleVFE", num_features=5),
    pts_middle_encoder=dict(
        type="SparseEncoder", in_channels=5, sparse_shape=[41, 640, 320], output_channels=128,
        order=["conv", "norm", "act"], norm_cfg=dict(type="BN1d", eps=1e-3, momentum=0.01),
        encoder_channels=[[16, 16, 32], [32, 32, 64], [64, 64, 128], [128, 128]],
        encoder_paddings=[[0, 0, 1], [0, 0, 1], [0, 0, [0, 1, 1]], [1, 1]],
        block_type="basicblock", sparseconv_backend="native"),
    pts_backbone=dict(type="SECOND", in_channels=256, out_channels=[128, 256], layer_nums=[5, 5],
                      layer_strides=[1, 2], norm_cfg=dict(type="BN", eps=1e-3, momentum=0.01)),
    pts_neck=dict(type="SECONDFPN", in_channels=[128, 256], out_channels=[256, 256], upsample_strides=[1, 2],
                  norm_cfg=dict(type="BN", eps=1e-3, momentum=0.01), use_conv_for_no_stride=True),
    map_head=dict(
        type="MapTRHead", in_channels=512, map_range=map_range, bev_range=point_cloud_range,
        class_names=map_classes, closed_classes=["ped_crossing"], embed_dims=256, num_queries=50,
        num_points=num_points, num_layers=6, num_heads=8, num_samples=4, ffn_dims=512, dropout=0.1,
        loss_weights=dict(cls=2.0, pts=5.0, dir=0.005), matcher=dict(cls_weight=2.0, pts_weight=5.0),
        test_cfg=dict(max_per_sample=50, score_threshold=0.0)),
)
map_gt = dict(type="LoadVectorMapGT", pc_range=map_range, num_points=num_points, class_names=map_classes)
train_pipeline = [
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="PointsSelectFeatures", features=point_features),
    map_gt,
    dict(type="PointShuffle"),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="PointsSelectFeatures", features=point_features),
    map_gt,
    dict(type="PackDetInputs"),
]
train_dataloader = dict(batch_size=4, num_workers=4,
                        dataset=dict(pipeline=train_pipeline, load_sweeps=9, with_map=True))
val_dataloader = dict(batch_size=1, num_workers=4,
                      dataset=dict(pipeline=test_pipeline, load_sweeps=9, with_map=True))
test_dataloader = val_dataloader
val_evaluator = dict(type="VectorMapMetric", class_names=map_classes)
test_evaluator = val_evaluator
lr = 6e-4
max_epochs = 24
optim_wrapper = dict(optimizer=dict(lr=lr, weight_decay=0.01), clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type="LinearLR", start_factor=1.0 / 3, by_epoch=False, begin=0, end=500),
    dict(type="CosineAnnealingLR", T_max=max_epochs, eta_min=lr * 1e-3, by_epoch=True, begin=0,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
