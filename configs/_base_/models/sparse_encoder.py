# CenterPoint's sparse middle encoder (mmdet3d SparseEncoder arguments) and a mean VFE; the
# configs using it set voxel_size, data_preprocessor and model.sparse_shape together (the
# point_cloud_range comes from the dataset base).
point_features = ["x", "y", "z", "intensity", "time_lag"]  # mmdet3d use_dim=[0, 1, 2, 3, 4]
voxel_encoder = dict(type="HardSimpleVFE", num_features=5)
model = dict(
    type="SparseEncoder",
    in_channels=5,
    sparse_shape=[41, 1440, 1440],
    order=["conv", "norm", "act"],
    norm_cfg=dict(type="BN1d", eps=1e-3, momentum=0.01),
    base_channels=16,
    output_channels=128,
    encoder_channels=[[16, 16, 32], [32, 32, 64], [64, 64, 128], [128, 128]],
    encoder_paddings=[[0, 0, 1], [0, 0, 1], [0, 0, [0, 1, 1]], [1, 1]],
    block_type="basicblock",
    sparseconv_backend="native",
)
