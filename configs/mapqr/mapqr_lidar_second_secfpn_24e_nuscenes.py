# The MapQR-style scatter-and-gather head (one query per element, concat gather) on the full
# nuScenes LiDAR MapTR setting (configs/maptr/maptr_lidar_second_secfpn_24e_nuscenes.py), with
# MapTRv2-style one-to-many auxiliary matching (300 extra training queries, ground truth x 6).
_base_ = ["../maptr/maptr_lidar_second_secfpn_24e_nuscenes.py"]
model = dict(map_head=dict(type="MapQRHead", gather="concat",
                           one_to_many=dict(num_queries=300, repeat=6, weight=1.0)))
