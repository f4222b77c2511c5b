# BEVFusion camera-only 3D detection, nuScenes full setting: the fusion config's camera branch
# with the plain LSS view transform (no LiDAR depth input), its 80-channel BEV map (180 x 180,
# 0.6 m cells) straight into the SECOND + FPN decoder and the CenterHead.  The points are still
# loaded (they are part of every sample) but the model does not read them.
_base_ = ["./bevfusion_det_fusion_nuscenes.py"]
camera_channels = 80
model = dict(
    data_preprocessor=dict(voxel=False, voxel_layer=None),
    encoders=dict(lidar=None, camera=dict(vtransform=dict(type="LSSTransform"))),
    fuser=None,
    decoder=dict(backbone=dict(in_channels=camera_channels)))
