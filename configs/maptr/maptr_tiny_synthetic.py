# A small MapTR-style vector-map model on the generated synthetic world (nuScenes format) that
# trains on 2 CPU cores in minutes: LiDAR only (keyframe + 2 sweeps), 0.2 m pillars-high voxels
# over a 32 m x 64 m window, a 3-stage sparse encoder (stride 4), a narrow SECOND + FPN (BEV
# stride 4: 40 x 80 cells of 0.8 m), and a 2-layer MapTR head (30 instance x 20 point queries,
# 64 channels).  Map ground truth and range follow MapTR: x in [-15, 15], y in [-30, 30] m of the
# nuScenes LiDAR frame (y forward); scored by the Chamfer-AP VectorMapMetric on the val scene.
# Batch 1 (30 updates per epoch over the 30 training frames): with this budget, twice the
# updates of batch 2 for the same compute gave both heads a clearly better mAP.
_base_ = ["../_base_/datasets/synthetic.py", "../_base_/schedules/onecycle.py",
          "../_base_/default_runtime.py"]
custom_imports = dict(imports=["perception.transforms.map_gt", "perception.evaluation.map_metric"],
                      allow_failed_imports=False)
data_root = "data/synthetic/"
map_classes = ["divider", "ped_crossing", "boundary"]
map_range = [-15.0, -30.0, 15.0, 30.0]
point_cloud_range = [-16.0, -32.0, -5.0, 16.0, 32.0, 3.0]
voxel_size = [0.2, 0.2, 0.4]
num_points = 20
point_features = ["x", "y", "z", "intensity", "time_lag"]
norm_momentum = 0.1
model = dict(
    type="MapDetector",
    data_preprocessor=dict(
        type="Det3DDataPreprocessor", voxel_type="hard",
        voxel_layer=dict(type="HardVoxelizer", max_num_points=10, voxel_size=voxel_size,
                         point_cloud_range=point_cloud_range, max_voxels=[40000, 50000])),
    pts_voxel_encoder=dict(type="HardSimpleVFE", num_features=5),
    pts_middle_encoder=dict(
        type="SparseEncoder", in_channels=5, sparse_shape=[21, 320, 160], output_channels=32,
        order=["conv", "norm", "act"], norm_cfg=dict(type="BN1d", eps=1e-3, momentum=norm_momentum),
        base_channels=16, encoder_channels=[[16], [32, 32], [32, 32]],
        encoder_paddings=[[1], [1, 1], [[0, 1, 1], 1]], block_type="conv_module",
        sparseconv_backend="native"),
    pts_backbone=dict(type="SECOND", in_channels=64, out_channels=[64, 64], layer_nums=[2, 2],
                      layer_strides=[1, 2], norm_cfg=dict(type="BN", eps=1e-3, momentum=norm_momentum)),
    pts_neck=dict(type="SECONDFPN", in_channels=[64, 64], out_channels=[64, 64], upsample_strides=[1, 2],
                  norm_cfg=dict(type="BN", eps=1e-3, momentum=norm_momentum), use_conv_for_no_stride=True),
    map_head=dict(
        type="MapTRHead", in_channels=128, map_range=map_range, bev_range=point_cloud_range,
        class_names=map_classes, closed_classes=["ped_crossing"], embed_dims=64, num_queries=30,
        num_points=num_points, num_layers=2, num_heads=4, num_samples=4, ffn_dims=128, dropout=0.0,
        loss_weights=dict(cls=2.0, pts=5.0, dir=0.005), matcher=dict(cls_weight=2.0, pts_weight=5.0),
        test_cfg=dict(max_per_sample=50, score_threshold=0.0)),
)
map_gt = dict(type="LoadVectorMapGT", pc_range=map_range, num_points=num_points, class_names=map_classes)
train_pipeline = [
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="PointsSelectFeatures", features=point_features),
    map_gt,
    dict(type="PackDetInputs"),
]
test_pipeline = train_pipeline
train_dataloader = dict(batch_size=1, num_workers=1, persistent_workers=True,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline, load_sweeps=2,
                                     with_map=True))
val_dataloader = dict(batch_size=1, num_workers=1,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline, load_sweeps=2,
                                   with_map=True))
test_dataloader = val_dataloader
val_evaluator = dict(type="VectorMapMetric", class_names=map_classes)
test_evaluator = val_evaluator
lr = 2e-3
# 72 epochs (2160 updates, ~7 min per model on this CPU): mAP 0.08-0.15 for MapTR and MapQR
# where 24 epochs gave 0.02-0.09 (README, "Tiny synthetic runs").
max_epochs = 72
optim_wrapper = dict(optimizer=dict(lr=lr), clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type="OneCycleLR", eta_max=lr, pct_start=0.3, div_factor=10, final_div_factor=1e2,
         anneal_strategy="cos", by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
