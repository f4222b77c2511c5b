# MapTR-style vector maps on BEVFusion's camera + LiDAR BEV map, nuScenes full setting: the
# BEVFusion camera + LiDAR config (ResNet-50 + GeneralizedLSSFPN + depth-aware LSS, sparse LiDAR
# encoder, ConvFuser, SECOND + FPN decoder: 512 channels on 0.6 m cells over +-54 m) with
# MapTR's head (50 instance x 20 point queries, 6 layers, 256 channels) in place of the
# segmentation head; MapTR's range x in [-15, 15], y in [-30, 30] m of the nuScenes LiDAR frame;
# map ground truth from the map expansion after the 3-D augmentations; Chamfer-AP metric.
_base_ = ["../bevfusion/bevfusion_seg_fusion_nuscenes.py"]
custom_imports = dict(imports=["perception.transforms.map_gt", "perception.evaluation.map_metric"],
                      allow_failed_imports=False)
map_classes = ["divider", "ped_crossing", "boundary"]
map_range = [-15.0, -30.0, 15.0, 30.0]
num_points = 20
vector_map_head = dict(
    type="MapTRHead", in_channels=512, map_range=map_range, bev_range=[-54.0, -54.0, 54.0, 54.0],
    class_names=map_classes, closed_classes=["ped_crossing"], embed_dims=256, num_queries=50,
    num_points=num_points, num_layers=6, num_heads=8, num_samples=4, ffn_dims=512, dropout=0.1,
    loss_weights=dict(cls=2.0, pts=5.0, dir=0.005), matcher=dict(cls_weight=2.0, pts_weight=5.0))
model = dict(heads=dict(_delete_=True, map=vector_map_head))
map_gt = dict(type="LoadVectorMapGT", pc_range=map_range, num_points=num_points, class_names=map_classes)
meta_keys = ("sample_idx", "aug", "img_aug", "lidar2img", "cam2img", "lidar2cam", "img_aug_matrix",
             "lidar_aug_matrix")
image_size = [256, 704]
point_cloud_range = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]
point_features = ["x", "y", "z", "intensity", "time_lag"]
train_pipeline = [
    dict(type="LoadMultiViewImages"),
    dict(type="ImageAug3D", final_dim=image_size, resize_lim=[0.38, 0.55], bot_pct_lim=[0.0, 0.0],
         rot_lim=[-5.4, 5.4], rand_flip=True, is_train=True),
    dict(type="ImageNormalize"),
    dict(type="GlobalRotScaleTrans", rot_range=[-0.78539816, 0.78539816], scale_ratio_range=[0.9, 1.1],
         translation_std=[0.5, 0.5, 0.5]),
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
    dict(type="ImageAug3D", final_dim=image_size, resize_lim=[0.48, 0.48], bot_pct_lim=[0.0, 0.0]),
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
