# The camera + LiDAR tiny seg config, trained as before but scored on the 40 held-out val keyframes
# of data/synthetic_heldout (see bevfusion_seg_lidar_tiny_synthetic_heldout.py for how to make it).
_base_ = ["./bevfusion_seg_fusion_tiny_synthetic.py"]
heldout_root = "data/synthetic_heldout/"
test_pipeline = [
    dict(type="LoadMultiViewImages"),
    dict(type="ImageAug3D", final_dim={{_base_.image_size}}, resize_lim={{_base_.resize_test}},
         bot_pct_lim=[0.0, 0.0]),
    dict(type="ImageNormalize"),
    # data_root=None: the map of the dataset being read (the held-out world's)
    dict(type="LoadBEVSegmentation", data_root=None, classes={{_base_.map_classes}}, x_range=[-50.0, 50.0],
         y_range=[-50.0, 50.0], resolution=1.0, line_width=1.0),
    dict(type="PointsRangeFilter", point_cloud_range={{_base_.point_cloud_range}}),
    dict(type="PointsSelectFeatures", features={{_base_.point_features}}),
    dict(type="LidarAugMatrix"),
    dict(type="PackDetInputs", meta_keys={{_base_.meta_keys}}),
]
val_dataloader = dict(dataset=dict(data_root=heldout_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
