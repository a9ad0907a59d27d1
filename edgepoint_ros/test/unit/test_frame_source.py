"""The player's frame source without ROS: image directories, videos, resizing,
looping, and the errors that name the path (the player node: test_ros_pipeline.py)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgepoint_ros.frame_source import FrameSource, default_source


def _frames(count: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """Frames that tell each other apart: frame i is filled with 20 * (i + 1)."""
    return [np.full((height, width, 3), 20 * (i + 1), np.uint8) for i in range(count)]


@pytest.fixture
def image_directory(tmp_path):
    for index, frame in enumerate(_frames(3)):
        cv2.imwrite(str(tmp_path / f"frame_{index:03d}.png"), frame)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "zz_broken.png").write_bytes(b"not a png")  # unreadable: skipped
    return tmp_path


def _read_all(source: FrameSource, limit: int = 20) -> list[np.ndarray]:
    frames = []
    while len(frames) < limit:
        frame = source.next()
        if frame is None:
            break
        frames.append(frame)
    return frames


def test_an_image_directory_is_read_in_name_order_once_without_loop(image_directory):
    source = FrameSource(image_directory, loop=False)
    assert source.frame_shape == (48, 64, 3)
    frames = _read_all(source)
    assert [int(f[0, 0, 0]) for f in frames] == [20, 40, 60]
    assert source.next() is None


def test_looping_starts_again_at_the_first_frame(image_directory):
    frames = _read_all(FrameSource(image_directory, loop=True), limit=7)
    assert [int(f[0, 0, 0]) for f in frames] == [20, 40, 60, 20, 40, 60, 20]


def test_frames_are_resized_and_zero_keeps_the_source_size(image_directory):
    assert FrameSource(image_directory, 32, 24).next().shape == (24, 32, 3)
    assert FrameSource(image_directory, 0, 24).next().shape == (24, 64, 3)
    assert FrameSource(image_directory, 0, 0).next().shape == (48, 64, 3)


def test_a_video_file_is_read_frame_by_frame(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened()
    for frame in _frames(4):
        writer.write(frame)
    writer.release()
    source = FrameSource(path, 32, 24, loop=False)
    frames = _read_all(source)
    assert len(frames) == 4 and all(f.shape == (24, 32, 3) for f in frames)
    assert [int(f[12, 16].mean()) for f in frames] == pytest.approx([20, 40, 60, 80], abs=3)
    looping = _read_all(FrameSource(path, loop=True), limit=6)
    assert len(looping) == 6  # the video is opened again after its last frame


def test_bad_sources_are_refused_naming_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"player source not found: {tmp_path}/none"):
        FrameSource(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is a directory without images"):
        FrameSource(tmp_path / "empty")
    (tmp_path / "garbage.avi").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="garbage.avi"):
        FrameSource(tmp_path / "garbage.avi")


def test_the_default_source_is_opencv_docs_street_video():
    assert default_source().name == "vtest.avi"
    if not default_source().is_file():
        pytest.skip("opencv-doc's vtest.avi is not installed")
    source = FrameSource(default_source(), 640, 480, loop=False)
    assert source.frame_shape == (480, 640, 3)
