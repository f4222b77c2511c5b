"""Coordinate conventions of the whole stack, written down once.

Frames
------
* **world** (``global`` in nuScenes, ``city`` in Argoverse 2): a fixed metric frame per
  location, z up.  Map elements and agent histories live here.
* **ego**: the vehicle body frame at a timestamp: origin at the rear-axle centre on the
  ground (nuScenes) or the rear axle (AV2), x forward, y left, z up.
* **lidar**: the top LiDAR sensor frame.  nuScenes' ``LIDAR_TOP`` has x right, y forward,
  z up; Argoverse 2's ``up_lidar`` is aligned with ego.  Boxes, points and BEV features
  of a frame are in this frame unless a name says otherwise.
* **camera**: OpenCV convention, x right, y down, z forward (optical axis).

Transforms
----------
Every pose is a 4x4 homogeneous matrix named ``a2b`` mapping coordinates *in frame a* to
coordinates *in frame b*: ``p_b = a2b @ p_a``.  So ``lidar2ego`` is the sensor's
extrinsic, ``ego2global`` the vehicle pose, ``cam2img`` the 3x3 intrinsic matrix.
Compositions read right to left: ``lidar2global = ego2global @ lidar2ego``.

Boxes
-----
A 3D box is ``(x, y, z, l, w, h, yaw)`` plus velocity ``(vx, vy)``:

* ``(x, y, z)`` is the **gravity centre** (the geometric centre of the cuboid), as in the
  nuScenes devkit and mmdetection3d's nuScenes infos (``origin=(0.5, 0.5, 0.5)``).
  :func:`perception.structures.boxes.Boxes3D.bottom_centers` gives the bottom centre.
* ``l`` is the extent along the heading, ``w`` across it, ``h`` along z.
* ``yaw`` is the counter-clockwise rotation about +z from the frame's +x axis to the
  heading, wrapped to ``[-pi, pi)``; a box with yaw 0 points along +x.
* ``(vx, vy)`` is the velocity in m/s expressed in the same frame as the box; NaN means
  unknown (an annotation seen once, as the nuScenes devkit reports it), and losses and
  metrics mask it.

BEV grids
---------
A BEV tensor is ``(B, C, H, W)``; column index ``j`` grows along +x and row index ``i``
grows along +y of the frame it is drawn in: cell ``(i, j)`` covers
``x in [x_min + j * res, x_min + (j + 1) * res)`` and ``y in [y_min + i * res, ...)``.
:class:`perception.structures.geometry.BEVGrid` implements it.

Time
----
Timestamps are float seconds (nuScenes microseconds and AV2 nanoseconds are converted on
load).  Multi-sweep points carry a ``time_lag`` column: keyframe time minus the sweep's
time, so 0 for the keyframe and positive for older sweeps.
"""

POINT_FEATURES_NUSCENES: tuple[str, ...] = ("x", "y", "z", "intensity", "ring")
"""Column layout of a nuScenes ``.pcd.bin`` file (float32)."""

NUSCENES_CLASSES: tuple[str, ...] = (
    "car",
    "truck",
    "trailer",
    "bus",
    "construction_vehicle",
    "bicycle",
    "motorcycle",
    "pedestrian",
    "traffic_cone",
    "barrier",
)
"""The ten nuScenes detection classes, in mmdetection3d's label order."""

CAMERA_NAMES_NUSCENES: tuple[str, ...] = (
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_FRONT_LEFT",
    "CAM_BACK",
    "CAM_BACK_LEFT",
    "CAM_BACK_RIGHT",
)
