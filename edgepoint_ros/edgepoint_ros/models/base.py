"""The interface every keypoint model implements (learned networks and OpenCV baselines).

A model turns one image into `Features`. The nodes, the `extract` CLI, the
evaluation and the benchmark only talk to this interface, so a new model plugs
in by implementing it and registering a builder in `models/__init__.py`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..features import Features


class ImageError(ValueError):
    """An input image the models cannot process (shape, dtype, size)."""


def as_bgr8(image: np.ndarray) -> np.ndarray:
    """Validate an image and return it as HxWx3 uint8 BGR (OpenCV order).

    Accepts HxW or HxWx1 grey, HxWx3 BGR, HxWx4 BGRA; uint8, uint16 (scaled by
    1/257) or float in [0, 1].
    """
    if not isinstance(image, np.ndarray):
        raise ImageError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ImageError(f"image must be HxW, HxWx1, HxWx3 or HxWx4; got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f"image is empty: {image.shape[1]}x{image.shape[0]} pixels")
    if image.dtype == np.uint8:
        pass
    elif image.dtype == np.uint16:
        image = (image.astype(np.float32) * (1.0 / 257.0) + 0.5).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        if not np.isfinite(image).all():
            raise ImageError("image contains NaN or infinite values")
        image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    else:
        raise ImageError(f"unsupported image dtype {image.dtype}")
    import cv2
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(image)


class FeatureModel(ABC):
    """A keypoint detector + descriptor.

    Subclasses set `name`, `descriptor_dim` and `descriptor_type` and implement
    `extract`. `runtime_info` reports what actually runs (read from the
    runtime session, not from what is installed).
    """

    name: str = ""
    descriptor_dim: int = 0
    descriptor_type: str = "float32"

    @abstractmethod
    def extract(self, image: np.ndarray) -> Features:
        """Keypoints of one image (any layout `as_bgr8` accepts)."""

    def reconfigure(self, config) -> bool:
        """Take new post-processing settings (max_keypoints, score_threshold,
        nms_radius, border, subpixel, binary_descriptors) without rebuilding.

        Returns True when the model applied them; False (the default) tells
        the caller to build a new model instead. The extractor node calls it
        for run-time parameter changes; a model whose post-processing reads
        `self.config` at extract time can override it to swap its config.
        """
        return False

    def runtime_info(self) -> dict:
        """What runs: {'runtime': ..., 'device': ..., 'precision': ..., ...}."""
        return {"runtime": "opencv", "device": "cpu", "precision": "fp32"}

    def warmup(self, width: int = 640, height: int = 480, runs: int = 2) -> None:
        """Run a few dummy frames so first-frame costs (allocation, engine
        builds, JIT) do not land on the first real image."""
        rng = np.random.default_rng(0)
        image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        for _ in range(runs):
            self.extract(image)
