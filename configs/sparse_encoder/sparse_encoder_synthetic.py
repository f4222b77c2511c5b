# The nuScenes CenterPoint sparse encoder on the synthetic world, with 0.1 m voxels over
# +-51.2 m (a 1024 x 1024 x 40 grid) so tuning and tests stay quick.
_base_ = ["../_base_/datasets/synthetic.py", "../_base_/default_runtime.py"]
point_cloud_range = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
voxel_size = [0.1, 0.1, 0.2]
point_features = ["x", "y", "z", "intensity", "time_lag"]
data_preprocessor = dict(type="HardVoxelizer", voxel_size=voxel_size,
                         point_cloud_range=point_cloud_range, max_num_points=10,
                         max_voxels=[120000, 160000])
voxel_encoder = dict(type="HardSimpleVFE", num_features=5)
model = dict(
    type="SparseEncoder",
    in_channels=5,
    sparse_shape=[41, 1024, 1024],
    order=["conv", "norm", "act"],
    norm_cfg=dict(type="BN1d", eps=1e-3, momentum=0.01),
    base_channels=16,
    output_channels=128,
    encoder_channels=[[16, 16, 32], [32, 32, 64], [64, 64, 128], [128, 128]],
    encoder_paddings=[[0, 0, 1], [0, 0, 1], [0, 0, [0, 1, 1]], [1, 1]],
    block_type="basicblock",
    sparseconv_backend="native",
)
