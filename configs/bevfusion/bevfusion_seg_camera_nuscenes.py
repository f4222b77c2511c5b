# BEVFusion BEV map segmentation, camera only, nuScenes full setting: the fusion seg config's
# camera branch with the plain LSS view transform (no LiDAR depth), its 80-channel BEV map
# straight into the decoder and the BEVSegmentationHead.  Points are still loaded (the 3-D
# augmentations move them with the map target) but the model does not read them.
_base_ = ["./bevfusion_seg_fusion_nuscenes.py"]
camera_channels = 80
model = dict(
    data_preprocessor=dict(voxel=False, voxel_layer=None),
    encoders=dict(lidar=None, camera=dict(vtransform=dict(type="LSSTransform"))),
    fuser=None,
    decoder=dict(backbone=dict(in_channels=camera_channels)))
