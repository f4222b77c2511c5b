# MapTR-style vector maps from the cameras only, nuScenes full setting: the camera + LiDAR map
# config (configs/maptr/maptr_fusion_nuscenes.py) with BEVFusion's camera-only branch (as in
# configs/bevfusion/bevfusion_seg_camera_nuscenes.py: plain LSS view transform, the 80-channel
# camera BEV map straight into the decoder).  Points are loaded but not read by the model.
_base_ = ["./maptr_fusion_nuscenes.py"]
camera_channels = 80
model = dict(
    data_preprocessor=dict(voxel=False, voxel_layer=None),
    encoders=dict(lidar=None, camera=dict(vtransform=dict(type="LSSTransform"))),
    fuser=None,
    decoder=dict(backbone=dict(in_channels=camera_channels)))
