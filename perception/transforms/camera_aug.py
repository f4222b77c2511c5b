"""ImageAug3D: BEVFusion's image augmentation (resize, crop, flip, rotate) with its pixel map.

One set of parameters is drawn per sample and applied to every camera (as BEVFusion):

* ``resize`` uniform in ``resize_lim`` (test: its mean), image scaled to ``(W*r, H*r)``;
* crop of ``final_dim`` ``(H, W)``: vertically ``int((1 - uniform(bot_pct_lim)) * newH) - H``
  from the top (test: mean of ``bot_pct_lim``), horizontally uniform (test: centred);
* horizontal flip with probability 0.5 when ``rand_flip`` (train only);
* rotation uniform in ``rot_lim`` degrees counter-clockwise about the crop centre (train only).

The 4x4 ``img_aug_matrix`` ``M`` maps an original pixel ``(u, v)`` (with any depth ``d`` in the
third slot) to the augmented one: ``[u', v', d] = M[:3, :3] @ [u, v, d] + M[:3, 3]`` with
``M[:2, :2]`` the scale/flip/rotation and ``M[:2, 3]`` the shift; it is composed onto the
pipeline's previous ``img_aug_matrix``.  Pixel coordinates are continuous with pixel ``(r, c)``
covering ``[c, c + 1) x [r, r + 1)`` (PIL's convention: resize scales them, a flip maps ``u`` to
``W - u``, rotation turns about ``(W / 2, H / 2)``).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..registry import TRANSFORMS


def _pair(values: Sequence[float], name: str) -> tuple[float, float]:
    pair = tuple(float(v) for v in values)
    if len(pair) != 2 or pair[0] > pair[1]:
        raise ValueError(f"ImageAug3D: {name} must be [min, max] with min <= max, got {list(values)}")
    return pair  # type: ignore[return-value]


def aug_matrix(resize: float, crop: tuple[int, int], flip: bool, rotate_deg: float,
               final_dim: tuple[int, int]) -> np.ndarray:
    """The 4x4 pixel map of one augmentation (module doc); ``crop = (left, top)``."""
    height, width = final_dim
    linear = np.eye(2) * resize
    shift = -np.asarray(crop, dtype=np.float64)
    if flip:
        mirror = np.array([[-1.0, 0.0], [0.0, 1.0]])
        linear, shift = mirror @ linear, mirror @ shift + np.array([float(width), 0.0])
    theta = np.deg2rad(rotate_deg)
    rotation = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    centre = np.array([width, height], dtype=np.float64) / 2
    linear, shift = rotation @ linear, rotation @ (shift - centre) + centre
    matrix = np.eye(4)
    matrix[:2, :2], matrix[:2, 3] = linear, shift
    return matrix


@TRANSFORMS.register_module()
class ImageAug3D:
    """Resize / crop / flip / rotate every image of the sample and record ``img_aug_matrix``
    (module doc).  ``final_dim`` is ``(H, W)`` of the network input (BEVFusion: 256 x 704)."""

    def __init__(self, final_dim: Sequence[int], resize_lim: Sequence[float], bot_pct_lim: Sequence[float] = (0.0, 0.0),
                 rot_lim: Sequence[float] = (0.0, 0.0), rand_flip: bool = False, is_train: bool = False) -> None:
        self.final_dim = tuple(int(v) for v in final_dim)
        if len(self.final_dim) != 2 or min(self.final_dim) < 1:
            raise ValueError(f"ImageAug3D: final_dim must be (H, W) > 0, got {list(final_dim)}")
        self.resize_lim = _pair(resize_lim, "resize_lim")
        if self.resize_lim[0] <= 0:
            raise ValueError(f"ImageAug3D: resize_lim must be positive, got {list(resize_lim)}")
        self.bot_pct_lim = _pair(bot_pct_lim, "bot_pct_lim")
        self.rot_lim = _pair(rot_lim, "rot_lim")
        self.rand_flip, self.is_train = bool(rand_flip), bool(is_train)

    def sample(self, image_hw: tuple[int, int]) -> tuple[float, tuple[int, int], bool, float]:
        """``(resize, (left, top), flip, rotate_deg)`` for an image of ``(H, W)`` pixels."""
        height, width = image_hw
        fh, fw = self.final_dim
        if self.is_train:
            resize = float(np.random.uniform(*self.resize_lim))
            new_h, new_w = int(height * resize), int(width * resize)
            top = int((1 - np.random.uniform(*self.bot_pct_lim)) * new_h) - fh
            left = int(np.random.uniform(0, max(0, new_w - fw)))
            flip = self.rand_flip and bool(np.random.choice([0, 1]))
            rotate = float(np.random.uniform(*self.rot_lim))
        else:
            resize = float(np.mean(self.resize_lim))
            new_h, new_w = int(height * resize), int(width * resize)
            top = int((1 - np.mean(self.bot_pct_lim)) * new_h) - fh
            left = int(max(0, new_w - fw) / 2)
            flip, rotate = False, 0.0
        return resize, (left, top), flip, rotate

    def apply(self, image: np.ndarray, resize: float, crop: tuple[int, int], flip: bool, rotate: float) -> np.ndarray:
        """The augmented ``(fH, fW, 3)`` image (PIL bilinear resize; pixels outside are black)."""
        from PIL import Image

        fh, fw = self.final_dim
        pil = Image.fromarray(np.asarray(image))
        pil = pil.resize((int(pil.width * resize), int(pil.height * resize)), Image.BILINEAR)
        pil = pil.crop((crop[0], crop[1], crop[0] + fw, crop[1] + fh))
        if flip:
            pil = pil.transpose(Image.FLIP_LEFT_RIGHT)
        if rotate:
            pil = pil.rotate(rotate, resample=Image.BILINEAR)
        return np.asarray(pil)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        images = results.get("imgs")
        if not images:
            raise KeyError("ImageAug3D: no 'imgs' in the pipeline dict; run LoadMultiViewImages first")
        shape = np.asarray(images[0]).shape[:2]
        resize, crop, flip, rotate = self.sample(shape)
        matrix = aug_matrix(resize, crop, flip, rotate, self.final_dim)
        results["imgs"] = [self.apply(image, resize, crop, flip, rotate) for image in images]
        previous = np.asarray(results.get("img_aug_matrix", np.tile(np.eye(4), (len(images), 1, 1))))
        results["img_aug_matrix"] = matrix[None] @ previous
        results["img_aug"] = dict(resize=resize, crop=list(crop), flip=flip, rotate=rotate)
        return results
