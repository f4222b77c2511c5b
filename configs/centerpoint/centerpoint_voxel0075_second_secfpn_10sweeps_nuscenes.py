# CenterPoint, nuScenes full setting (mmdetection3d's centerpoint_voxel0075_second_secfpn
# head-dcn-free recipe): 0.075 m voxels, keyframe + 9 sweeps, the ten classes in six task
# groups, GT sampling + global rotation / scaling / translation / flips, one-cycle AdamW,
# official DetectionEval on val.  Build the infos and GT database first:
#   python tools/create_data.py nuscenes --root data/nuscenes --version v1.0-trainval
#   python tools/create_data.py gt-database --infos data/nuscenes/nuscenes_infos_train.pkl \
#       --data-root data/nuscenes --load-sweeps 9
_base_ = ["../_base_/datasets/nuscenes.py", "../_base_/models/centerpoint.py",
          "../_base_/schedules/onecycle.py", "../_base_/default_runtime.py"]
data_root = "data/nuscenes/"
point_cloud_range = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]
point_features = ["x", "y", "z", "intensity", "time_lag"]  # mmdet3d use_dim=[0, 1, 2, 3, 4]
class_names = ["car", "truck", "trailer", "bus", "construction_vehicle", "bicycle", "motorcycle",
               "pedestrian", "traffic_cone", "barrier"]
db_sampler = dict(
    info_path=data_root + "nuscenes_dbinfos_train.pkl", data_root=data_root, rate=1.0,
    prepare=dict(filter_by_difficulty=[-1],
                 filter_by_min_points=dict(car=5, truck=5, bus=5, trailer=5, construction_vehicle=5,
                                           traffic_cone=5, barrier=5, motorcycle=5, bicycle=5,
                                           pedestrian=5)),
    classes=class_names,
    sample_groups=dict(car=2, truck=3, construction_vehicle=7, bus=4, trailer=6, barrier=2,
                       motorcycle=6, bicycle=6, pedestrian=2, traffic_cone=2))
train_pipeline = [
    dict(type="ObjectSample", db_sampler=db_sampler),
    dict(type="GlobalRotScaleTrans", rot_range=[-0.78539816, 0.78539816],
         scale_ratio_range=[0.9, 1.1], translation_std=[0.5, 0.5, 0.5]),
    dict(type="RandomFlip3D", flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectNameFilter", classes=class_names),
    dict(type="PointShuffle"),
    dict(type="PointsSelectFeatures", features=point_features),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="PointsSelectFeatures", features=point_features),
    dict(type="PackDetInputs"),
]
train_dataloader = dict(batch_size=4, num_workers=4,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline, load_sweeps=9))
val_dataloader = dict(dataset=dict(data_root=data_root, pipeline=test_pipeline, load_sweeps=9))
test_dataloader = val_dataloader
val_evaluator = dict(type="NuScenesMetric", data_root=data_root, version="v1.0-trainval", eval_set="val")
test_evaluator = val_evaluator
