"""Where weights and generated model files live.

* Shipped weights: `edgepoint_ros/weights/` inside the package (small files in git).
* Generated files (ONNX exports of third-party weights, quantized models,
  TensorRT engine caches): the cache directory, `$EDGEPOINT_ROS_CACHE`, else
  `$XDG_CACHE_HOME/edgepoint_ros`, else `~/.cache/edgepoint_ros`.
  `scripts/env.sh` sets it to `<repo>/.cache/edgepoint_ros`.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
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


@contextmanager
def written_atomically(target: Path):
    """A private temporary path beside `target` for the block to write; it is
    renamed onto `target` when the block succeeds and removed in any case. A
    reader never sees half a file, and writers of one target at once (two
    evaluations or nodes exporting the same model) each rename a whole one."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}",
                                dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def shipped_weights(name: str) -> Path:
    return SHIPPED_WEIGHTS_DIR / name


def opencv_sample_data_dir() -> Path:
    """Debian opencv-doc's sample images and videos (installed by scripts/setup.sh)."""
    return Path(os.environ.get("EDGEPOINT_ROS_OPENCV_DATA",
                               "/usr/share/doc/opencv-doc/examples/data"))
