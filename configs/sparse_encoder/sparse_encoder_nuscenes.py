# CenterPoint's sparse middle encoder on nuScenes (0.075 m voxels, 10 sweeps), for the
# sparse-conv autotuner (tools/autotune.py) and as the backbone part of detector configs.
_base_ = ["../_base_/datasets/nuscenes.py", "../_base_/models/sparse_encoder.py",
          "../_base_/default_runtime.py"]
voxel_size = [0.075, 0.075, 0.2]
data_preprocessor = dict(type="HardVoxelizer", voxel_size=voxel_size,
                         point_cloud_range=[-54.0, -54.0, -5.0, 54.0, 54.0, 3.0], max_num_points=10,
                         max_voxels=[120000, 160000])
