# BEVFusion BEV map segmentation, camera only, on the generated synthetic world: the camera branch
# of the fusion tiny seg config (same images, backbone, neck, grid) with the plain LSS view
# transform (no LiDAR depth), its 64-channel BEV map (64 x 64 cells of 1.6 m) straight into the
# same decoder and head, same budget.  Points are still loaded (the pipeline's augmentations move
# them) but the model does not read them.
_base_ = ["./bevfusion_seg_fusion_tiny_synthetic.py"]
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
