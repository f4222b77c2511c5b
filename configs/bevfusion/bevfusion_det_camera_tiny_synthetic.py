# Camera-only tiny synthetic BEVFusion: the fusion tiny config's camera branch with the plain LSS
# view transform, its 32-channel BEV map (128 x 128, 0.8 m) straight into the decoder.
_base_ = ["./bevfusion_det_fusion_tiny_synthetic.py"]
camera_channels = 32
model = dict(
    data_preprocessor=dict(voxel=False, voxel_layer=None),
    encoders=dict(lidar=None, camera=dict(vtransform=dict(
        _delete_=True, type="LSSTransform", in_channels=64, out_channels=camera_channels, image_size=[128, 352],
        feature_size=[16, 44], dbound=[1.0, 60.0, 1.0], xbound=[-51.2, 51.2, 0.4], ybound=[-51.2, 51.2, 0.4],
        zbound=[-10.0, 10.0, 20.0], downsample=2))),
    fuser=None,
    decoder=dict(backbone=dict(in_channels=camera_channels)))
