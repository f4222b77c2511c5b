"""An autonomous-driving 3D perception stack: LiDAR/camera encoders, BEV fusion, detection,
vector maps and STR planning, on nuScenes, Argoverse 2 and a generated synthetic world."""

__version__ = "0.1.0"
