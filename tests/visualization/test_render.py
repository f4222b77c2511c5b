"""PNG views: files are written atomically and show what they should."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from perception.structures import Boxes3D, CameraView, Frame, MapElement
from perception.visualization import project_points, render_bev, render_camera, render_gallery


def _frame(tmp_path: Path) -> Frame:
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.uniform(-30, 30, (2000, 2)), rng.uniform(-2, 1, (2000, 1)),
                             rng.uniform(0, 255, (2000, 1))], axis=1)
    boxes = Boxes3D(np.array([[10.0, 0.0, 0.0, 4.0, 2.0, 1.6, 0.0, 0.0, 0.0]]), [0])
    image_path = tmp_path / "cam.png"
    Image.fromarray(np.full((90, 160, 3), 128, np.uint8)).save(image_path)
    # a camera at the origin looking along +x of the LiDAR frame (OpenCV: z forward, x right, y down)
    cam2ego = np.eye(4)
    cam2ego[:3, :3] = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    camera = CameraView("CAM", str(image_path), np.array([[80.0, 0, 80], [0, 80.0, 45], [0, 0, 1]]), cam2ego, 0.0)
    return Frame("t", 0.0, "test", points, ("x", "y", "z", "intensity"), np.eye(4), np.eye(4), ("car",),
                 boxes=boxes, cameras={"CAM": camera},
                 map_elements=[MapElement("divider", np.array([[-20.0, 2.0], [20.0, 2.0]]))])


def test_projection_of_a_point_ahead_lands_in_the_image_centre(tmp_path: Path) -> None:
    frame = _frame(tmp_path)
    pixels, depth = project_points(frame, "CAM", np.array([[10.0, 0.0, 0.0], [10.0, 1.0, 0.0]]))
    assert np.allclose(pixels[0], [80.0, 45.0]) and np.isclose(depth[0], 10.0)
    assert pixels[1, 0] < 80.0  # +y (left in the LiDAR frame) is left in the image


def test_pngs_are_written_and_replace_old_files(tmp_path: Path) -> None:
    frame = _frame(tmp_path)
    out = tmp_path / "out"
    bev = render_bev(frame, out / "bev.png")
    first = bev.stat().st_size
    render_bev(frame, bev, extent_m=20.0)
    camera = render_camera(frame, "CAM", out / "cam.png")
    gallery = render_gallery(frame, "CAM", out / "gallery.png")
    for path in (bev, camera, gallery):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] > 100
    assert first > 1000
    assert sorted(p.name for p in out.iterdir()) == ["bev.png", "cam.png", "gallery.png"]  # no temp files left
