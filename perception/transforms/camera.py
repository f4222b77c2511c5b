"""Camera pipeline steps (registered in ``TRANSFORMS``): load the six images with their
matrices, normalize them, and publish the LiDAR augmentation for the view transform.

Pipeline-dict entries written here (the contract of ``PackDetInputs(meta_keys=...)``), one row
per camera in ``cam_names`` order, numpy float64:

* ``imgs``: list of ``(H, W, 3)`` uint8 RGB images (``(3, H, W)`` float32 after
  :class:`ImageNormalize`);
* ``cam2img (N, 4, 4)``: the 3x3 intrinsics padded to 4x4; ``lidar2cam (N, 4, 4)``;
  ``lidar2img (N, 4, 4)`` = ``cam2img @ lidar2cam``: LiDAR point -> *original-image* pixel
  times depth (the frame's own calibration, through the world when each camera has its pose);
* ``img_aug_matrix (N, 4, 4)``: original -> network-input pixels, identity until
  :class:`~perception.transforms.camera_aug.ImageAug3D` runs;
* ``lidar_aug_matrix (4, 4)`` (:class:`LidarAugMatrix`): the 3-D augmentation of points/boxes.

So a LiDAR point ``p`` (original frame) lands at network pixel
``img_aug_matrix @ dehomogenize(lidar2img @ p)``.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..registry import TRANSFORMS
from ..structures import Frame, FrameError
from ..structures.conventions import CAMERA_NAMES_NUSCENES


def read_image(path: str | Path, camera: str) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB of ``path`` (not cached on the frame: frames are re-read per epoch)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FrameError(f"camera {camera}: image file not found: {path}")
    try:
        with Image.open(path) as handle:
            return np.asarray(handle.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise FrameError(f"camera {camera}: cannot decode image {path}: {error}") from error


def pad_intrinsics(cam2img: np.ndarray) -> np.ndarray:
    """The 3x3 intrinsic matrix padded to 4x4 (identity in the last row and column)."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(cam2img, dtype=np.float64)
    return matrix


def camera_matrices(frame: Frame, names: Sequence[str]) -> dict[str, np.ndarray]:
    """``cam2img``, ``lidar2cam`` and ``lidar2img`` ``(N, 4, 4)`` of ``frame``'s cameras ``names``."""
    cam2img = np.stack([pad_intrinsics(frame.cameras[name].cam2img) for name in names])
    lidar2cam = np.stack([frame.lidar2cam(name) for name in names])
    return {"cam2img": cam2img, "lidar2cam": lidar2cam, "lidar2img": cam2img @ lidar2cam}


@TRANSFORMS.register_module()
class LoadMultiViewImages:
    """Read the frame's cameras (``camera_names``, nuScenes' six by default) and their matrices.

    Raises :class:`~perception.structures.FrameError` naming the frame when a camera is
    missing (load the dataset with ``with_cameras=True``).
    """

    def __init__(self, camera_names: Sequence[str] = CAMERA_NAMES_NUSCENES) -> None:
        self.camera_names = tuple(camera_names)
        if not self.camera_names:
            raise ValueError("LoadMultiViewImages: camera_names is empty")

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        frame = results["frame"]
        missing = [name for name in self.camera_names if name not in frame.cameras]
        if missing:
            raise FrameError(f"LoadMultiViewImages: frame {frame.token} has no camera(s) {missing} (it has "
                             f"{sorted(frame.cameras)}; build the dataset with with_cameras=True)")
        images = []
        for name in self.camera_names:
            view = frame.cameras[name]
            images.append(view.image if view.image is not None else read_image(view.image_path, name))
        results["imgs"] = images
        results["cam_names"] = list(self.camera_names)
        results["ori_shape"] = [image.shape[:2] for image in images]
        results.update(camera_matrices(frame, self.camera_names))
        results["img_aug_matrix"] = np.tile(np.eye(4), (len(images), 1, 1))
        return results


@TRANSFORMS.register_module()
class ImageNormalize:
    """``(H, W, 3)`` uint8 images -> ``(3, H, W)`` float32 ``(image - mean) / std`` (0-255 scale,
    ImageNet statistics by default, as mmdet's ``data_preprocessor``)."""

    def __init__(self, mean: Sequence[float] = (123.675, 116.28, 103.53),
                 std: Sequence[float] = (58.395, 57.12, 57.375)) -> None:
        self.mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
        if self.mean.size != 3 or self.std.size != 3 or (self.std <= 0).any():
            raise ValueError(f"ImageNormalize: mean and std need 3 values, std > 0; got {mean}, {std}")

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        if "imgs" not in results:
            raise KeyError("ImageNormalize: no 'imgs' in the pipeline dict; run LoadMultiViewImages first")
        out = []
        for index, image in enumerate(results["imgs"]):
            array = np.asarray(image)
            if array.ndim != 3 or array.shape[2] != 3:
                raise ValueError(f"ImageNormalize: image {index} must be (H, W, 3), got {array.shape}")
            out.append((array.transpose(2, 0, 1).astype(np.float32) - self.mean) / self.std)
        results["imgs"] = out
        return results


@TRANSFORMS.register_module()
class LidarAugMatrix:
    """Publish ``results['aug']['lidar_aug_matrix']`` (identity when no 3-D augmentation ran) as
    ``results['lidar_aug_matrix']``; run it after the global augmentations."""

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        aug = results.get("aug") or {}
        results["lidar_aug_matrix"] = np.asarray(aug.get("lidar_aug_matrix", np.eye(4)), dtype=np.float64)
        return results
