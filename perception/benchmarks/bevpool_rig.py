"""Camera rigs for the BEV pooling benchmark: the real nuScenes keyframe's, or a synthetic one.

A :class:`Rig` holds what the LSS view transform reads per camera (``cam2img``, ``cam2lidar``
and the image augmentation ``img_aug``), batched ``(1, Ncam, ...)``.  The real rig reads the
six cameras of ``../shared/data/nuscenes-keyframe`` through :mod:`perception.datasets`
(``lidar2cam`` through the world, each camera at its own timestamp); the test-time image
augmentation is BEVFusion's nuScenes one: resize by 0.48 (1600x900 -> 768x432), crop the
bottom 256 rows and the middle 704 columns.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
NUSCENES_KEYFRAME = REPO_ROOT.parent / "shared" / "data" / "nuscenes-keyframe"
NUSCENES_INFO = "n015-2018-07-24-11-22-45+0800.pkl"
BEVFUSION_RESIZE = 0.48
"""BEVFusion's nuScenes test-time resize (``resize_lim = [0.48, 0.48]``)."""


@dataclass(frozen=True)
class Rig:
    """Batched calibration ``(1, Ncam, ...)`` of one frame's cameras."""

    name: str
    cameras: tuple[str, ...]
    cam2img: torch.Tensor
    cam2lidar: torch.Tensor
    img_aug: torch.Tensor
    note: str = ""
    image_sizes: list[tuple[int, int]] = field(default_factory=list)

    def calibration(self) -> list[torch.Tensor]:
        """The tensors a plan cache keys on."""
        return [self.cam2img, self.cam2lidar, self.img_aug]


def bevfusion_img_aug(width: int, height: int, final_dim: tuple[int, int],
                      resize: float = BEVFUSION_RESIZE) -> torch.Tensor:
    """4x4 original -> network pixels of BEVFusion's test-time ``ImageAug3D`` (resize, then
    crop ``final_dim = (H, W)`` at the bottom, centred horizontally)."""
    new_w, new_h = int(width * resize), int(height * resize)
    crop_h, crop_w = new_h - final_dim[0], int(max(0, new_w - final_dim[1]) / 2)
    if crop_h < 0:
        raise ValueError(f"image {width}x{height} resized by {resize} is lower than the {final_dim[0]} "
                         "rows of the network input")
    aug = torch.eye(4, dtype=torch.float64)
    aug[0, 0] = aug[1, 1] = resize
    aug[0, 3], aug[1, 3] = -crop_w, -crop_h
    return aug


def nuscenes_rig(root: Path, final_dim: tuple[int, int]) -> Rig:
    """The keyframe's six cameras (order of ``CAMERA_NAMES_NUSCENES``)."""
    from PIL import Image

    from perception.datasets.mmdet3d_info import (NUSCENES_DATA_PREFIX, InfoPaths,
                                                  frame_from_mmdet3d_info, load_info_file)
    from perception.structures import CAMERA_NAMES_NUSCENES, invert_transform

    info_path = Path(root) / NUSCENES_INFO
    _, data_list = load_info_file(info_path)
    paths = InfoPaths(str(root), {key: "" for key in NUSCENES_DATA_PREFIX})  # flat folder
    frame = frame_from_mmdet3d_info(data_list[0], paths)
    missing = [c for c in CAMERA_NAMES_NUSCENES if c not in frame.cameras]
    if missing:
        raise ValueError(f"{info_path}: cameras {missing} missing from the info record")
    cam2img, cam2lidar, aug, sizes = [], [], [], []
    for name in CAMERA_NAMES_NUSCENES:
        view = frame.cameras[name]
        if view.image_size is not None:
            size = view.image_size
        else:
            with Image.open(view.image_path) as image:  # header only, no decode
                size = image.size
        sizes.append((int(size[0]), int(size[1])))
        cam2img.append(torch.from_numpy(view.cam2img))
        cam2lidar.append(torch.from_numpy(invert_transform(frame.lidar2cam(name))))
        aug.append(bevfusion_img_aug(*sizes[-1], final_dim))
    return Rig("nuscenes", tuple(CAMERA_NAMES_NUSCENES), torch.stack(cam2img)[None],
               torch.stack(cam2lidar)[None], torch.stack(aug)[None],
               f"real nuScenes keyframe {root.name} (token {frame.token})", sizes)


def synthetic_rig(final_dim: tuple[int, int], cameras: int = 6) -> Rig:
    """``cameras`` pinhole cameras 1.6 m up, evenly spread in yaw, nuScenes-like intrinsics
    (f = 1266 px, 1600x900 images) and BEVFusion's augmentation."""
    cam2img = torch.tensor([[1266.4, 0.0, 816.3], [0.0, 1266.4, 491.5], [0.0, 0.0, 1.0]], dtype=torch.float64)
    cam2lidar = []
    for index in range(cameras):
        yaw = 2 * math.pi * index / cameras
        forward = [math.cos(yaw), math.sin(yaw), 0.0]
        right = [math.sin(yaw), -math.cos(yaw), 0.0]
        matrix = torch.eye(4, dtype=torch.float64)
        matrix[:3, 0], matrix[:3, 1], matrix[:3, 2] = (torch.tensor(right), torch.tensor([0.0, 0.0, -1.0]),
                                                       torch.tensor(forward))  # OpenCV x right, y down, z fwd
        matrix[:3, 3] = torch.tensor([0.0, 0.0, 1.6])
        cam2lidar.append(matrix)
    names = tuple(f"CAM_{i}" for i in range(cameras))
    return Rig("synthetic", names, cam2img.expand(1, cameras, 3, 3).clone(), torch.stack(cam2lidar)[None],
               bevfusion_img_aug(1600, 900, final_dim).expand(1, cameras, 4, 4).clone(),
               f"synthetic rig: {cameras} cameras 1.6 m up, {360 / cameras:g} deg apart",
               [(1600, 900)] * cameras)


def load_rig(source: str, root: Path, final_dim: tuple[int, int]) -> tuple[Rig, list[str]]:
    """``source`` ``nuscenes`` (raises when absent), ``synthetic``, or ``auto`` (the real
    keyframe when present, else the synthetic rig with a note)."""
    if source == "synthetic":
        return synthetic_rig(final_dim), []
    if source == "nuscenes" or (root / NUSCENES_INFO).is_file():
        if not (root / NUSCENES_INFO).is_file():
            raise FileNotFoundError(f"nuScenes keyframe info not found: {root / NUSCENES_INFO}")
        return nuscenes_rig(root, final_dim), []
    return synthetic_rig(final_dim), [f"real keyframe not found at {root}: synthetic rig used"]
