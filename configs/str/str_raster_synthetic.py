# STR with the BEV raster context encoder (64 x 64 cells at 1 m around the target, 7 channels).
_base_ = ["./str_small_synthetic.py"]
motion_feature_cfg = dict(raster_size=64, raster_resolution=1.0)
train_dataloader = dict(dataset=dict(feature_cfg=motion_feature_cfg))
val_dataloader = dict(dataset=dict(feature_cfg=motion_feature_cfg))
test_dataloader = val_dataloader
model = dict(context_encoder=dict(_delete_=True, type="STRRasterEncoder", in_channels=7, raster_size=64))
