"""Frames of a real image sequence, one at a time, for the player node (no ROS).

`FrameSource` reads a video file (anything OpenCV reads) or a directory of
images (sorted by file name, files OpenCV cannot read skipped), resizes each
frame to width x height (0 keeps the source's size; INTER_AREA) and, with
`loop`, starts again after the last frame. Frames are decoded one at a time,
never all held in memory. A missing path, a directory without images, a file
OpenCV cannot open or a source without a readable frame is refused when the
source is opened, with an error naming the path.

The default source is Debian opencv-doc's `vtest.avi`: 795 frames of a real
static street camera (768x576, pedestrians walking), textured enough that
consecutive frames match well; at the player's default 640x480 it is exactly
4:3 like the source.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .paths import opencv_sample_data_dir

DEFAULT_VIDEO = "vtest.avi"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".webp")


def default_source() -> Path:
    return opencv_sample_data_dir() / DEFAULT_VIDEO


class FrameSource:
    """Frames of a video file or an image directory, resized, optionally looping."""

    def __init__(self, source: str | Path, width: int = 0, height: int = 0, loop: bool = True):
        self.path = Path(source).expanduser()
        self.size = (int(width), int(height))
        self.loop = loop
        if not self.path.exists():
            hint = (" (the default video comes with the Debian package opencv-doc; "
                    "scripts/setup.sh installs it)" if self.path == default_source() else "")
            raise FileNotFoundError(f"player source not found: {self.path}{hint}")
        self._images: list[Path] = []
        self._capture = None
        self._index = 0
        self._frames_this_pass = 0
        if self.path.is_dir():
            self._images = sorted(p for p in self.path.iterdir()
                                  if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self._images:
                raise ValueError(f"player source {self.path} is a directory without images "
                                 f"({', '.join(IMAGE_SUFFIXES)})")
        else:
            self._open_video()
        first = self.next()
        if first is None:
            raise ValueError(f"player source {self.path} has no readable frames")
        self._restart()
        self.frame_shape = first.shape

    def _open_video(self) -> None:
        if self._capture is not None:
            self._capture.release()
        self._capture = cv2.VideoCapture(str(self.path))
        if not self._capture.isOpened():
            raise ValueError(f"cannot open player source {self.path}: not an image "
                             "directory and not a video OpenCV can read")

    def _restart(self) -> None:
        self._index = 0
        self._frames_this_pass = 0
        if self._capture is not None:
            self._open_video()

    def _read_raw(self) -> np.ndarray | None:
        if self._capture is not None:
            ok, frame = self._capture.read()
            return frame if ok else None
        while self._index < len(self._images):
            path = self._images[self._index]
            self._index += 1
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is not None:
                return frame
        return None

    def next(self) -> np.ndarray | None:
        """The next BGR frame, or None at the end (when not looping)."""
        frame = self._read_raw()
        if frame is None and self.loop and self._frames_this_pass:
            self._restart()
            frame = self._read_raw()
        if frame is None:
            return None
        self._frames_this_pass += 1
        width = self.size[0] or frame.shape[1]
        height = self.size[1] or frame.shape[0]
        if (width, height) != (frame.shape[1], frame.shape[0]):
            frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        return frame
