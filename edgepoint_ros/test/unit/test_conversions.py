"""Message conversions and the newest-frame worker, in-process (real rclpy
message classes; no DDS needed). The matcher's stream logic: test_frontend.py."""
from __future__ import annotations

import array
import threading

import cv2
import numpy as np
import pytest
from edgepoint_msgs.msg import Keypoints
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from edgepoint_ros.features import Features
from edgepoint_ros.conversions import (MessageError, compressed_image_msg,
                                           compressed_msg_to_array, features_to_keypoints_msg,
                                           image_msg, image_msg_to_array,
                                           keypoints_msg_to_features)
from edgepoint_ros.newest_frame import NewestFrameWorker

RNG = np.random.default_rng(7)
BGR = RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8)


def _msg(array_: np.ndarray, encoding: str, step: int | None = None, data: bytes | None = None):
    array_ = np.ascontiguousarray(array_)
    msg = Image(height=array_.shape[0], width=array_.shape[1], encoding=encoding,
                step=array_.strides[0] if step is None else step)
    msg.data = array.array("B", array_.tobytes() if data is None else data)
    return msg


@pytest.mark.parametrize("encoding, make, expected", [
    ("bgr8", lambda: BGR, lambda: BGR),
    ("rgb8", lambda: BGR[:, :, ::-1], lambda: BGR),
    ("bgra8", lambda: cv2.cvtColor(BGR, cv2.COLOR_BGR2BGRA),
     lambda: cv2.cvtColor(BGR, cv2.COLOR_BGR2BGRA)),
    ("rgba8", lambda: cv2.cvtColor(BGR, cv2.COLOR_BGR2RGBA), lambda: BGR),
    ("mono8", lambda: BGR[:, :, 0], lambda: BGR[:, :, 0]),
    ("mono16", lambda: BGR[:, :, 0].astype(np.uint16) * 257,
     lambda: BGR[:, :, 0].astype(np.uint16) * 257),
])
def test_image_encodings_decode_to_what_the_models_take(encoding, make, expected):
    np.testing.assert_array_equal(image_msg_to_array(_msg(make(), encoding)), expected())


def test_row_padding_and_big_endian_are_honoured():
    padded = np.zeros((6, 5 * 3 + 9), np.uint8)
    padded[:, :15] = BGR.reshape(6, 15)
    msg = Image(height=6, width=5, encoding="bgr8", step=24)
    msg.data = array.array("B", padded.tobytes())
    np.testing.assert_array_equal(image_msg_to_array(msg), BGR)
    grey16 = (np.arange(30, dtype=np.uint16) * 1000).reshape(6, 5)
    msg = _msg(grey16.astype(">u2"), "mono16")
    msg.is_bigendian = 1
    np.testing.assert_array_equal(image_msg_to_array(msg), grey16)


@pytest.mark.parametrize("msg, problem", [
    (_msg(BGR, "hsv8"), "unsupported image encoding 'hsv8'"),
    (_msg(BGR, "bgr8", data=BGR.tobytes()[:-1]), "fewer than step * height"),
    (_msg(BGR, "bgr8", step=14), "step 14 is smaller than width * bytes per pixel"),
    (Image(width=0, height=0, encoding="bgr8"), "image is empty: 0x0"),
    (_msg(np.full((2, 2), np.nan, np.float32), "32FC1"), "4 NaN or infinite"),
    (Image(width=100000, height=100000, encoding="mono8", step=100000),
     "larger than the 100000000 pixels"),
])
def test_bad_images_raise_an_error_naming_the_problem(msg, problem):
    with pytest.raises(MessageError, match=problem.replace("*", r"\*").replace("(", r"\(")):
        image_msg_to_array(msg)


def test_compressed_round_trip_and_corrupt_data():
    header = Header(frame_id="cam")
    blocks = np.kron(BGR, np.ones((16, 16, 1), np.uint8))  # flat 16x16 blocks survive JPEG
    decoded = compressed_msg_to_array(compressed_image_msg(blocks, header, 95))
    assert decoded.shape == (96, 80, 3)
    assert np.abs(decoded.astype(int) - blocks).mean() < 8
    corrupt = CompressedImage(format="jpeg")
    corrupt.data = array.array("B", b"\xff\xd8\xff\xe0 this is not a JPEG")
    with pytest.raises(MessageError, match="cannot decode compressed image .* corrupt"):
        compressed_msg_to_array(corrupt)
    with pytest.raises(MessageError, match="compressed image is empty"):
        compressed_msg_to_array(CompressedImage(format="jpeg"))


def test_image_msg_publishes_the_requested_encoding():
    header = Header(frame_id="cam")
    for encoding in ("bgr8", "rgb8", "mono8"):
        msg = image_msg(BGR, header, encoding)
        assert msg.encoding == encoding and msg.header.frame_id == "cam"
        back = image_msg_to_array(msg)
        expected = cv2.cvtColor(BGR, cv2.COLOR_BGR2GRAY) if encoding == "mono8" else BGR
        np.testing.assert_array_equal(back, expected)


def _features(n=20, kind="float32", dim=64, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "float32":
        desc = rng.standard_normal((n, dim)).astype(np.float32)
        desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    else:
        desc = rng.integers(0, 256, (n, dim // 8), dtype=np.uint8)
    return Features(rng.uniform(0, 300, (n, 2)), rng.uniform(0, 1, n), desc, (320, 240), kind, dim)


@pytest.mark.parametrize("kind, dim", [("float32", 64), ("binary", 256)])
def test_keypoints_message_round_trip(kind, dim):
    features = _features(kind=kind, dim=dim)
    msg = features_to_keypoints_msg(features, Header(frame_id="cam"), "test", 42, 7)
    assert (msg.image_width, msg.image_height, msg.session_id, msg.sequence) == (320, 240, 42, 7)
    assert msg.descriptor_type == (Keypoints.DESCRIPTOR_FLOAT32 if kind == "float32"
                                   else Keypoints.DESCRIPTOR_BINARY)
    back = keypoints_msg_to_features(msg)
    np.testing.assert_array_equal(back.keypoints, features.keypoints)
    np.testing.assert_array_equal(back.descriptors, features.descriptors)
    assert (back.descriptor_type, back.descriptor_dim) == (kind, dim)


def test_inconsistent_keypoints_messages_are_refused():
    msg = features_to_keypoints_msg(_features(), Header(), "test", 1, 0)
    msg.descriptors = msg.descriptors[:-3]
    with pytest.raises(MessageError, match="expected 1280"):
        keypoints_msg_to_features(msg)
    msg = features_to_keypoints_msg(_features(), Header(), "test", 1, 0)
    msg.y = msg.y[:-1]
    with pytest.raises(MessageError, match="differ in length"):
        keypoints_msg_to_features(msg)
    msg = features_to_keypoints_msg(_features(), Header(), "test", 1, 0)
    msg.descriptor_type = 7
    with pytest.raises(MessageError, match="descriptor_type 7"):
        keypoints_msg_to_features(msg)


def test_newest_frame_worker_skips_and_counts_what_it_could_not_process():
    started, release = threading.Event(), threading.Event()
    failed, two_done = threading.Event(), threading.Event()
    processed, skipped, errors = [], [], []

    def process(item):
        if item == "bad":
            raise ValueError("bad item")
        started.set()
        release.wait(5)
        processed.append(item)
        if len(processed) == 2:
            two_done.set()

    def on_error(item, exc):
        errors.append((item, str(exc)))
        failed.set()

    worker = NewestFrameWorker("test", process, lambda: skipped.append(1), on_error)
    worker.submit("bad")
    assert failed.wait(5)
    worker.submit(1)
    assert started.wait(5)  # worker busy with 1
    for item in (2, 3, 4):
        worker.submit(item)  # 2 and 3 are replaced before the worker is free
    release.set()
    assert two_done.wait(5)
    worker.close()
    assert processed == [1, 4]
    assert len(skipped) == 2
    assert errors == [("bad", "bad item")]  # the worker survived it
