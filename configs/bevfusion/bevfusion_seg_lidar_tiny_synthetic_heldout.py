# The LiDAR-only tiny seg config, trained as before (the default world's 30 keyframes) but scored
# on a larger held-out set: the 40 val keyframes of 4 more scenes of the same town, made by
#   python tools/create_data.py synthetic --out data/synthetic_heldout --scenes 5 --seed 1 \
#       --val-fraction 0.8 --formats nuscenes --no-gt-database
# (10 val keyframes hold only a handful of pedestrian crossings, whose IoU swings between seeds).
_base_ = ["./bevfusion_seg_lidar_tiny_synthetic.py"]
heldout_root = "data/synthetic_heldout/"
test_pipeline = [
    # data_root=None: the map of the dataset being read (the held-out world's)
    dict(type="LoadBEVSegmentation", data_root=None, classes={{_base_.map_classes}}, x_range=[-50.0, 50.0],
         y_range=[-50.0, 50.0], resolution=1.0, line_width=1.0),
    dict(type="PointsRangeFilter", point_cloud_range={{_base_.point_cloud_range}}),
    dict(type="PointsSelectFeatures", features={{_base_.point_features}}),
    dict(type="PackDetInputs", meta_keys={{_base_.meta_keys}}),
]
val_dataloader = dict(dataset=dict(data_root=heldout_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
