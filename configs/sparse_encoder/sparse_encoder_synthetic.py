# The nuScenes CenterPoint sparse encoder on the synthetic world, with 0.1 m voxels over
# +-51.2 m (a 1024 x 1024 x 40 grid) so tuning and tests stay quick.
_base_ = ["../_base_/datasets/synthetic.py", "../_base_/models/sparse_encoder.py",
          "../_base_/default_runtime.py"]
point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
voxel_size = [0.1, 0.1, 0.2]
data_preprocessor = dict(type="HardVoxelizer", voxel_size=voxel_size, point_cloud_range=point_cloud_range,
                         max_num_points=10, max_voxels=[120000, 160000])
model = dict(sparse_shape=[41, 1024, 1024])
