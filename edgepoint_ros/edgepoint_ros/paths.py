"""Where weights and generated model files live.

* Shipped weights: `edgepoint_ros/weights/` inside the package (small files in git).
* Generated files (ONNX exports of third-party weights, quantized models,
  TensorRT engine caches): the cache directory, `$EDGEPOINT_ROS_CACHE`, else
  `$XDG_CACHE_HOME/edgepoint_ros`, else `~/.cache/edgepoint_ros`.
  `scripts/env.sh` sets it to `<repo>/.cache/edgepoint_ros`.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SHIPPED_WEIGHTS_DIR = PACKAGE_DIR / "weights"


def cache_dir(create: bool = True) -> Path:
    base = os.environ.get("EDGEPOINT_ROS_CACHE")
    if base:
        path = Path(base)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(xdg) / "edgepoint_ros"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def shipped_weights(name: str) -> Path:
    return SHIPPED_WEIGHTS_DIR / name


def opencv_sample_data_dir() -> Path:
    """Debian opencv-doc's sample images and videos (installed by scripts/setup.sh)."""
    return Path(os.environ.get("EDGEPOINT_ROS_OPENCV_DATA",
                               "/usr/share/doc/opencv-doc/examples/data"))
