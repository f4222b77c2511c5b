# The generated synthetic world (tools/create_data.py synthetic) as a nuScenes dataset.
_base_ = ["./nuscenes.py"]
data_root = "data/synthetic/"
train_dataloader = dict(dataset=dict(data_root=data_root, ann_file="nuscenes_infos_train.pkl",
                                     load_sweeps=9))
val_dataloader = dict(dataset=dict(data_root=data_root, ann_file="nuscenes_infos_val.pkl",
                                   load_sweeps=9))
test_dataloader = val_dataloader
