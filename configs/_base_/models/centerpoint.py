# (Names starting with __ stay local to this file, so dataset bases may define the same ones.)
# CenterPoint (Yin et al., CVPR 2021) as in mmdetection3d 1.x's nuScenes setting: hard voxels
# (0.075 m) -> mean VFE -> sparse encoder (native engine or spconv) -> SECOND + FPN -> one
# CenterHead with six task groups.  Dataset configs override ranges, grids and classes.
__voxel_size = [0.075, 0.075, 0.2]
__point_cloud_range = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]
__grid_size = [1440, 1440, 40]
__out_size_factor = 8
__post_center_range = [-61.2, -61.2, -10.0, 61.2, 61.2, 10.0]
model = dict(
    type="CenterPoint",
    data_preprocessor=dict(
        type="Det3DDataPreprocessor",
        voxel_type="hard",
        voxel_layer=dict(type="HardVoxelizer", max_num_points=10, voxel_size=__voxel_size,
                         point_cloud_range=__point_cloud_range, max_voxels=[90000, 120000])),
    pts_voxel_encoder=dict(type="HardSimpleVFE", num_features=5),
    pts_middle_encoder=dict(
        type="SparseEncoder", in_channels=5, sparse_shape=[41, 1440, 1440], output_channels=128,
        order=["conv", "norm", "act"], norm_cfg=dict(type="BN1d", eps=1e-3, momentum=0.01),
        encoder_channels=[[16, 16, 32], [32, 32, 64], [64, 64, 128], [128, 128]],
        encoder_paddings=[[0, 0, 1], [0, 0, 1], [0, 0, [0, 1, 1]], [1, 1]],
        block_type="basicblock", sparseconv_backend="native",
        # per-layer configs found by `tools/autotune.py CONFIG` for this encoder on this machine,
        # else the compiled native_implicit_gemm dataflow (see perception/models/backbones/sparse_execution.py)
        execution="auto"),
    pts_backbone=dict(type="SECOND", in_channels=256, out_channels=[128, 256], layer_nums=[5, 5],
                      layer_strides=[1, 2], norm_cfg=dict(type="BN", eps=1e-3, momentum=0.01)),
    pts_neck=dict(type="SECONDFPN", in_channels=[128, 256], out_channels=[256, 256],
                  upsample_strides=[1, 2], norm_cfg=dict(type="BN", eps=1e-3, momentum=0.01),
                  use_conv_for_no_stride=True),
    pts_bbox_head=dict(
        type="CenterHead",
        in_channels=512,
        tasks=[dict(num_class=1, class_names=["car"]),
               dict(num_class=2, class_names=["truck", "construction_vehicle"]),
               dict(num_class=2, class_names=["bus", "trailer"]),
               dict(num_class=1, class_names=["barrier"]),
               dict(num_class=2, class_names=["motorcycle", "bicycle"]),
               dict(num_class=2, class_names=["pedestrian", "traffic_cone"])],
        common_heads=dict(reg=[2, 2], height=[1, 2], dim=[3, 2], rot=[2, 2], vel=[2, 2]),
        share_conv_channel=64,
        bbox_coder=dict(type="CenterPointBBoxCoder", post_center_range=__post_center_range,
                        max_num=500, score_threshold=0.1, out_size_factor=__out_size_factor,
                        voxel_size=__voxel_size[:2], pc_range=__point_cloud_range[:2], code_size=9),
        loss_cls=dict(type="GaussianFocalLoss", reduction="mean"),
        loss_bbox=dict(type="L1Loss", reduction="mean", loss_weight=0.25),
        norm_bbox=True),
    train_cfg=dict(pts=dict(
        grid_size=__grid_size, voxel_size=__voxel_size, out_size_factor=__out_size_factor, dense_reg=1,
        gaussian_overlap=0.1, max_objs=500, min_radius=2, point_cloud_range=__point_cloud_range,
        code_weights=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2])),
    test_cfg=dict(pts=dict(
        post_center_limit_range=__post_center_range, max_per_img=500, max_pool_nms=False,
        min_radius=[4, 12, 10, 1, 0.85, 0.175], score_threshold=0.1, out_size_factor=__out_size_factor,
        voxel_size=__voxel_size[:2], pc_range=__point_cloud_range[:2], nms_type="rotate",
        pre_max_size=1000, post_max_size=83, nms_thr=0.2)),
)
