# MapTR-style vector maps on BEVFusion's camera + LiDAR BEV map, generated synthetic world
# (nuScenes format: six cameras, keyframes): the tiny BEVFusion camera + LiDAR config (its
# encoders, ConvFuser and SECOND + FPN decoder, 1.6 m cells over +-51.2 m) with a MapTRHead in
# place of the segmentation head.  The BEVFusion detector is reused as is: its heads follow the
# stack's head contract, so the map head reads the fused BEV and fills ``pred_map``.  Map ground
# truth after the 3-D augmentations, MapTR's range in the nuScenes LiDAR frame (y forward).
_base_ = ["../bevfusion/bevfusion_seg_fusion_tiny_synthetic.py"]
custom_imports = dict(imports=["perception.transforms.map_gt", "perception.evaluation.map_metric"],
                      allow_failed_imports=False)
map_classes = ["divider", "ped_crossing", "boundary"]
map_range = [-15.0, -30.0, 15.0, 30.0]
num_points = 20
vector_map_head = dict(
    type="MapTRHead", in_channels=128, map_range=map_range, bev_range=[-51.2, -51.2, 51.2, 51.2],
    class_names=map_classes, closed_classes=["ped_crossing"], embed_dims=64, num_queries=30,
    num_points=num_points, num_layers=2, num_heads=4, num_samples=4, ffn_dims=128, dropout=0.0,
    loss_weights=dict(cls=2.0, pts=5.0, dir=0.005), matcher=dict(cls_weight=2.0, pts_weight=5.0),
    test_cfg=dict(max_per_sample=50, score_threshold=0.0))
model = dict(heads=dict(_delete_=True, map=vector_map_head))
map_gt = dict(type="LoadVectorMapGT", pc_range=map_range, num_points=num_points, class_names=map_classes)
meta_keys = ("sample_idx", "aug", "img_aug", "lidar2img", "cam2img", "lidar2cam", "img_aug_matrix",
             "lidar_aug_matrix")
image_size = [88, 288]
point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
point_features = ["x", "y", "z", "intensity", "time_lag"]
train_pipeline = [
    dict(type="LoadMultiViewImages"),
    dict(type="ImageAug3D", final_dim=image_size, resize_lim=[0.34, 0.38], bot_pct_lim=[0.0, 0.0],
         rot_lim=[-5.4, 5.4], rand_flip=True, is_train=True),
    dict(type="ImageNormalize"),
    dict(type="GlobalRotScaleTrans", rot_range=[-0.3925, 0.3925], scale_ratio_range=[0.95, 1.05],
         translation_std=[0.0, 0.0, 0.0]),
    dict(type="RandomFlip3D", flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
    map_gt,
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="PointShuffle"),
    dict(type="PointsSelectFeatures", features=point_features),
    dict(type="LidarAugMatrix"),
    dict(type="PackDetInputs", meta_keys=meta_keys),
]
test_pipeline = [
    dict(type="LoadMultiViewImages"),
    dict(type="ImageAug3D", final_dim=image_size, resize_lim=[0.36, 0.36], bot_pct_lim=[0.0, 0.0]),
    dict(type="ImageNormalize"),
    map_gt,
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="PointsSelectFeatures", features=point_features),
    dict(type="LidarAugMatrix"),
    dict(type="PackDetInputs", meta_keys=meta_keys),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline, with_map=True))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline, with_map=True))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type="VectorMapMetric", class_names=map_classes)
test_evaluator = val_evaluator
