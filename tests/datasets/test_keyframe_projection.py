"""The real nuScenes keyframe: LiDAR points and ground-truth boxes projected into the six images
land where the calibration says (matrices against the info file's own ``cam2img @ lidar2cam``,
physically sensible pixels, 360-degree coverage, boxes seen by a camera) and the camera
pipeline's augmentation moves them with the image content.  Also writes the overlay PNG::

    python tests/datasets/test_keyframe_projection.py   # -> demo/gallery/nuscenes_keyframe_projection.png
"""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from perception.structures import Frame  # noqa: E402
from perception.transforms.camera import LoadMultiViewImages  # noqa: E402
from perception.transforms.camera_aug import ImageAug3D  # noqa: E402
from perception.visualization.bev import save_figure  # noqa: E402
from perception.visualization.camera import draw_camera  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
GALLERY_PNG = REPO / "demo" / "gallery" / "nuscenes_keyframe_projection.png"
pytestmark = pytest.mark.real_data


def load_keyframe(root: Path) -> Frame:
    from perception.benchmarks.bevfusion import keyframe_with_cameras

    return keyframe_with_cameras(root, sweeps=0)


def project(lidar2img: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``(N, 2)`` and depths ``(N,)`` of LiDAR-frame ``points`` under a 4x4 ``lidar2img``."""
    p = np.c_[points[:, :3].astype(np.float64), np.ones(len(points))] @ lidar2img.T
    return p[:, :2] / np.maximum(p[:, 2:3], 1e-6), p[:, 2]


def inside(uv: np.ndarray, depth: np.ndarray, hw: tuple[int, int], min_depth: float = 1.0) -> np.ndarray:
    return (depth > min_depth) & (uv[:, 0] >= 0) & (uv[:, 0] < hw[1]) & (uv[:, 1] >= 0) & (uv[:, 1] < hw[0])


@pytest.fixture(scope="module")
def keyframe(nuscenes_keyframe_dir: Path) -> tuple[Frame, dict, dict]:
    frame = load_keyframe(nuscenes_keyframe_dir)
    info = pickle.load(next(nuscenes_keyframe_dir.glob("*.pkl")).open("rb"))["data_list"][0]
    return frame, info, LoadMultiViewImages()({"frame": frame})


def test_pipeline_matrices_equal_the_info_files_calibration(keyframe) -> None:
    frame, info, results = keyframe
    assert results["cam_names"] == list(info["images"]) and len(results["imgs"]) == 6
    for i, name in enumerate(results["cam_names"]):
        record = info["images"][name]
        reference = np.eye(4)
        reference[:3, :3] = np.asarray(record["cam2img"])
        reference = reference @ np.asarray(record["lidar2cam"])  # mmdet3d's own lidar -> image
        np.testing.assert_allclose(results["lidar2img"][i], reference, rtol=0, atol=1e-3)
        assert results["imgs"][i].shape == (900, 1600, 3)


def test_lidar_points_land_where_the_cameras_look(keyframe) -> None:
    frame, info, results = keyframe
    points = frame.points[:, :3].astype(np.float64)
    seen = np.zeros(len(points), dtype=int)
    for i, name in enumerate(results["cam_names"]):
        uv, depth = project(results["lidar2img"][i], points)
        hit = inside(uv, depth, results["imgs"][i].shape[:2])
        seen += hit
        cy = info["images"][name]["cam2img"][1][2]
        assert hit.sum() > 2000, name
        # ground returns (LiDAR ~1.8 m above the road) fall below the principal point row,
        # returns from well above the sensor above it: the cameras are upright
        ground, high = hit & (points[:, 2] < -1.4) & (depth > 3), hit & (points[:, 2] > 1.0) & (depth > 3)
        assert (uv[ground, 1] > cy).mean() > 0.97 and (uv[high, 1] < cy).mean() > 0.97, name
        # the optical axis: points imaged on the principal column lie along the camera's heading
        cam2lidar = np.linalg.inv(results["lidar2cam"][i])
        axis = np.arctan2(cam2lidar[1, 2], cam2lidar[0, 2])
        column = hit & (np.abs(uv[:, 0] - info["images"][name]["cam2img"][0][2]) < 3) & (depth > 5)
        azimuth = np.arctan2(points[column, 1] - cam2lidar[1, 3], points[column, 0] - cam2lidar[0, 3])
        assert column.sum() > 5 and np.abs(np.angle(np.exp(1j * (azimuth - axis)))).max() < np.deg2rad(1.0), name
    ranges = np.hypot(points[:, 0], points[:, 1])
    ring = (ranges > 3) & (ranges < 50) & (points[:, 2] > -1.4)
    assert (seen[ring] > 0).mean() > 0.85  # the rig sees all around; overlaps are narrow
    assert seen.max() <= 2 and (seen[ring] == 2).mean() < 0.15


def test_ground_truth_boxes_project_onto_their_points(keyframe) -> None:
    frame, _, results = keyframe
    boxes = frame.boxes
    counted = boxes.count_points(frame.points[:, :3])
    dense = boxes.num_lidar_pts >= 5
    assert dense.sum() >= 10
    # the box convention (gravity centre, yaw) matches the annotation's LiDAR point counts
    assert np.abs(counted[dense] - boxes.num_lidar_pts[dense]).max() <= 0.1 * boxes.num_lidar_pts[dense].max()
    visible = np.zeros(len(boxes), dtype=bool)
    masks = boxes.points_in_boxes(frame.points[:, :3])
    for i in range(len(results["cam_names"])):
        hw = results["imgs"][i].shape[:2]
        centre_uv, centre_depth = project(results["lidar2img"][i], boxes.centers)
        seen = inside(centre_uv, centre_depth, hw, 0.5)
        visible |= seen
        for b in np.nonzero(seen & dense)[0]:
            corners_uv, corners_depth = project(results["lidar2img"][i], boxes.corners()[b])
            if (corners_depth <= 0.5).any():
                continue
            point_uv, _ = project(results["lidar2img"][i], frame.points[masks[:, b], :3])
            lo, hi = corners_uv.min(0) - 1, corners_uv.max(0) + 1
            assert ((point_uv >= lo) & (point_uv <= hi)).all(), (b, i)
            top, bottom = project(results["lidar2img"][i], boxes.centers[b:b + 1] + [[0, 0, boxes.sizes[b, 2] / 2]])[0], \
                project(results["lidar2img"][i], boxes.bottom_centers()[b:b + 1])[0]
            assert bottom[0, 1] > top[0, 1]  # z up in the LiDAR frame is up in every image
    assert visible.all()  # every annotated box is in some camera's view


def test_image_aug_moves_projections_with_the_pixels(keyframe) -> None:
    frame, _, results = keyframe
    original = [img.copy() for img in results["imgs"]]
    out = ImageAug3D(final_dim=(256, 704), resize_lim=(0.48, 0.48))(dict(results, imgs=list(original)))
    i = 0
    uv0, depth0 = project(out["lidar2img"][i], frame.points)
    aug = out["img_aug_matrix"][i]  # acts on dehomogenized pixels (u, v, d), not on lidar2img's rows
    uv, depth = uv0 @ aug[:2, :2].T + aug[:2, 3], depth0
    keep = inside(uv, depth, (256, 704), 2.0) & inside(uv0, depth0, (900, 1600), 2.0)
    assert keep.sum() > 1000
    net = out["imgs"][i][uv[keep, 1].astype(int), uv[keep, 0].astype(int)].astype(float)
    raw = original[i][uv0[keep, 1].astype(int), uv0[keep, 0].astype(int)].astype(float)
    shuffled = raw[np.random.default_rng(0).permutation(len(raw))]
    error, baseline = np.abs(net - raw).mean(), np.abs(net - shuffled).mean()
    assert error < 0.35 * baseline, (error, baseline)


def render_overlay(frame: Frame, out_path: Path) -> Path:
    """Six images (nuScenes layout: front row, back row) with LiDAR points coloured by depth and
    the ground-truth boxes as wireframes."""
    names = ["CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT"]
    figure, axes = plt.subplots(2, 3, figsize=(18, 7), dpi=80)
    for ax, name in zip(axes.ravel(), names):
        draw_camera(ax, frame, name)
        uv, depth = project(frame.lidar2img(name), frame.points)
        hit = inside(uv, depth, frame.cameras[name].load_image().shape[:2])
        ax.scatter(uv[hit, 0], uv[hit, 1], c=np.minimum(depth[hit], 50), cmap="turbo", s=2.5, vmin=0, vmax=50,
                   linewidths=0)
    figure.suptitle(f"nuScenes keyframe {frame.token[:8]}: LiDAR points (colour = depth, 0-50 m) and "
                    f"{len(frame.boxes)} ground-truth boxes projected with the calibration")
    figure.tight_layout()
    return save_figure(figure, out_path)


def test_overlay_png(keyframe, tmp_path: Path) -> None:
    path = render_overlay(keyframe[0], tmp_path / "overlay.png")
    image = plt.imread(path)
    assert image.shape[0] > 400 and image.shape[1] > 1000 and image[..., :3].std() > 0.05


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data" / "nuscenes-keyframe"
    print(render_overlay(load_keyframe(root), GALLERY_PNG))
