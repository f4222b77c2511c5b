# MapTR-style vector maps from the cameras only, generated synthetic world: the camera + LiDAR
# map config (configs/maptr/maptr_fusion_tiny_synthetic.py) with BEVFusion's camera-only branch
# (as in configs/bevfusion/bevfusion_seg_camera_tiny_synthetic.py: plain LSS view transform, no
# LiDAR depth, 64-channel BEV map straight into the decoder).  Points are still loaded (the 3-D
# augmentations move them with the map ground truth) but the model does not read them.
_base_ = ["./maptr_fusion_tiny_synthetic.py"]
camera_channels = 64
model = dict(
    data_preprocessor=dict(voxel=False, voxel_layer=None),
    encoders=dict(lidar=None, camera=dict(vtransform=dict(
        _delete_=True, type="LSSTransform", in_channels=64, out_channels=camera_channels, image_size=[88, 288],
        feature_size=[22, 72], dbound=[1.0, 50.0, 1.0], xbound=[-51.2, 51.2, 0.8], ybound=[-51.2, 51.2, 0.8],
        zbound=[-10.0, 10.0, 20.0], downsample=2))),
    fuser=None,
    decoder=dict(backbone=dict(in_channels=camera_channels)),
)
