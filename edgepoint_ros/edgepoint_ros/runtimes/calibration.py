"""Calibration images for INT8 post-training quantization, from offline data.

Static INT8 quantization needs a few dozen representative inputs to choose
the activation ranges. They come from what this machine has without a
network connection:

* frames of two of the videos in Debian's ``opencv-doc`` (vtest.avi: a
  street, Megamind.avi), sampled evenly through each video; not tree.avi,
  the real video that quality is reported on and nothing is fitted to;
* the natural images of ``opencv-doc``;
* the photos of ``mate-backgrounds`` (/usr/share/backgrounds/mate/nature).

Never the Oxford affine benchmark (it is how the INT8 models are judged):
``opencv-doc`` ships copies of two Oxford images (graf1.png, graf3.png) and
two Leuven frames (leuvenA.jpg, leuvenB.jpg); those are excluded by name.

Every image is centre-cropped to 4:3 and resized to 640x480 (the camera size
the nodes target), and turned into a network input the way this package's
networks take images: float32 in [0, 1], NCHW, RGB for 3-channel inputs and
grey (mean of the colour channels) for 1-channel inputs. The selection is
deterministic, so a quantized model is reproducible from its source model.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..paths import opencv_sample_data_dir

CALIBRATION_SIZE = (640, 480)  # width, height
DEFAULT_COUNT = 64
VIDEOS = ("vtest.avi", "Megamind.avi")
FRAMES_PER_VIDEO = 12
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# Oxford affine benchmark images (or frames of its sequences) shipped by opencv-doc.
BENCHMARK_NAME_PREFIXES = ("graf", "leuven", "bikes", "boat", "img")


def backgrounds_dir() -> Path:
    return Path(os.environ.get("EDGEPOINT_ROS_BACKGROUNDS", "/usr/share/backgrounds/mate"))


def is_benchmark_image(path: Path) -> bool:
    return path.name.lower().startswith(BENCHMARK_NAME_PREFIXES)


def _fit(image: np.ndarray, size=CALIBRATION_SIZE) -> np.ndarray:
    """Centre-crop to the aspect ratio of `size`, then resize to it."""
    width, height = size
    h, w = image.shape[:2]
    if w * height > h * width:
        crop = h * width // height
        image = image[:, (w - crop) // 2:(w - crop) // 2 + crop]
    else:
        crop = w * height // width
        image = image[(h - crop) // 2:(h - crop) // 2 + crop]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _video_frames(path: Path, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        frames = []
        for index in np.linspace(0, max(total - 1, 0), count).astype(int):
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, frame = capture.read()
            if ok and frame is not None:
                frames.append(frame)
        return frames
    finally:
        capture.release()


def _still_paths() -> list[Path]:
    paths = []
    data = opencv_sample_data_dir()
    if data.is_dir():
        paths += sorted(p for p in data.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    nature = backgrounds_dir() / "nature"
    if nature.is_dir():
        paths += sorted(p for p in nature.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return [p for p in paths if not is_benchmark_image(p)]


def calibration_images(count: int = DEFAULT_COUNT) -> list[np.ndarray]:
    """`count` BGR uint8 640x480 images (video frames first, then stills
    spread evenly over the available ones)."""
    if count <= 0:
        raise ValueError(f"calibration image count must be > 0, got {count}")
    images = []
    data = opencv_sample_data_dir()
    for name in VIDEOS:
        if (data / name).is_file():
            images += [_fit(f) for f in _video_frames(data / name, FRAMES_PER_VIDEO)]
    images = images[:count]
    stills = _still_paths()
    wanted = count - len(images)
    if wanted > 0 and stills:
        picks = np.unique(np.linspace(0, len(stills) - 1, min(wanted, len(stills))).astype(int))
        for index in picks:
            image = cv2.imread(str(stills[index]), cv2.IMREAD_COLOR)
            if image is not None and min(image.shape[:2]) >= 64:
                images.append(_fit(image))
    if not images:
        raise FileNotFoundError(
            f"no calibration images: neither {data} (Debian package opencv-doc) nor "
            f"{backgrounds_dir()} (mate-backgrounds) has images; install one of them")
    return images


def as_network_input(bgr: np.ndarray, channels: int) -> np.ndarray:
    """A BGR uint8 image as a (1, C, H, W) float32 [0, 1] tensor (see module docstring)."""
    if channels == 3:
        chw = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)
    elif channels == 1:
        chw = bgr.astype(np.float32).mean(axis=2)[None]
    else:
        raise ValueError(f"calibration supports image inputs with 1 or 3 channels, got {channels}")
    return np.ascontiguousarray(chw[None], dtype=np.float32) * np.float32(1.0 / 255.0)
