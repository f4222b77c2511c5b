# The tiny synthetic CenterPoint on a larger generated world (16 scenes x 10 s, 12 train /
# 4 val scenes, no images), the setting of the README's "learns in 15 minutes" run:
#   python tools/create_data.py synthetic --out data/synthetic_large --scenes 16 --seed 1 \
#       --sensor-duration 10 --no-images --formats nuscenes
# (the GT database is built with it).  Same model and augmentations as the base config.
_base_ = ["./centerpoint_tiny_synthetic.py"]
data_root = "data/synthetic_large/"
point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
db_sampler = dict(
    info_path=data_root + "nuscenes_dbinfos_train.pkl", data_root=data_root, rate=1.0,
    prepare={{_base_.db_sampler.prepare}}, classes={{_base_.class_names}},
    sample_groups={{_base_.db_sampler.sample_groups}})
train_pipeline = [
    dict(type="ObjectSample", db_sampler=db_sampler),
    dict(type="GlobalRotScaleTrans", rot_range=[-0.3925, 0.3925], scale_ratio_range=[0.95, 1.05],
         translation_std=[0.0, 0.0, 0.0]),
    dict(type="RandomFlip3D", flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectNameFilter", classes={{_base_.class_names}}),
    dict(type="PointShuffle"),
    dict(type="PointsSelectFeatures", features={{_base_.point_features}}),
    dict(type="PackDetInputs"),
]
train_dataloader = dict(dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(data_root=data_root)
test_evaluator = val_evaluator
lr = 2e-3
max_epochs = 5
param_scheduler = [
    dict(type="OneCycleLR", eta_max=lr, pct_start=0.4, div_factor=10, final_div_factor=1e3,
         anneal_strategy="cos", by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=2))
