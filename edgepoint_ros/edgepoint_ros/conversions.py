"""Conversions between ROS messages and numpy / `Features`, with validation.

Images: `rosbags.image` (PyPI rosbags-image) supplies the encoding table and
colour conversions; it works on rclpy messages because it only reads their
fields. Two things it does not do, done here: it ignores `step` (row padding)
and trusts that `data` is long enough, and it asserts instead of reporting a
corrupt JPEG. Every problem with a message raises `MessageError` (a
ValueError) whose text names the field and the values, so a node can log it
and carry on with the next message.

Size limits: a header may declare any size (uint32 width and height, or a
JPEG/PNG header claiming 60000x60000 pixels, a "decompression bomb"). Images
larger than `max_pixels` (the extractor's `max_image_pixels` parameter,
default MAX_IMAGE_PIXELS) are refused from the declared size, before any
pixel buffer is allocated or any compressed data is decoded.

Headers (`check_header`): a stamp that is not a time (negative seconds,
nanoseconds >= 10^9) is an error; an unset stamp (0) or an empty frame_id is
legal but useless downstream (no capture time, no optical frame), so it is
returned as a warning and the frame is still processed.

Matches: `matches_fields` is the one mapping from matching results to the
fields of edgepoint_msgs/Matches, used by the matcher and stereo nodes and the
bag writer.

Keypoints: `features_to_keypoints_msg` / `keypoints_msg_to_features` follow the
layout documented in edgepoint_msgs/msg/Keypoints.msg (row-major descriptors;
binary descriptors packed MSB first, numpy.packbits order).

rclpy stores numeric arrays as `array.array`; filling them from bytes is a
single copy, much faster than assigning a numpy array element by element.
"""
from __future__ import annotations

import array
import sys

import numpy as np
from rosbags.image import image as rosbags_image

from .features import Features

# Encodings the extractor accepts, grouped by what the model gets.
PASS_THROUGH_ENCODINGS = ("mono8", "mono16", "bgr8", "bgra8", "bgr16", "bgra16", "32FC1")
CONVERTED_ENCODINGS = ("rgb8", "rgba8", "rgb16", "rgba16", "bayer_rggb8", "bayer_bggr8",
                       "bayer_gbrg8", "bayer_grbg8", "bayer_rggb16", "bayer_bggr16",
                       "bayer_gbrg16", "bayer_grbg16", "uyvy", "yuyv", "yuv422", "yuv422_yuy2")
SUPPORTED_ENCODINGS = PASS_THROUGH_ENCODINGS + CONVERTED_ENCODINGS

# No camera makes more than this; a header claiming more is broken.
MAX_IMAGE_PIXELS = 100_000_000


class MessageError(ValueError):
    """A message the nodes cannot use; the text names the problem."""


def stamp_to_ns(stamp) -> int:
    """builtin_interfaces/Time (sec, nanosec; rclpy, rosbags or any object
    with those fields) -> integer nanoseconds. The one conversion the package uses."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int, stamp_type=None):
    from builtin_interfaces.msg import Time
    stamp = (stamp_type or Time)()
    stamp.sec, stamp.nanosec = divmod(int(ns), 1_000_000_000)
    return stamp


def check_header(header) -> list[str]:
    """Problems of a std_msgs/Header: raises MessageError for a stamp that is
    not a time; returns warnings (unset stamp, empty frame_id) otherwise."""
    sec, nanosec = int(header.stamp.sec), int(header.stamp.nanosec)
    if sec < 0:
        raise MessageError(f"header.stamp.sec is negative ({sec}): not a time")
    if nanosec >= 1_000_000_000:
        raise MessageError(f"header.stamp.nanosec is {nanosec}, not < 10^9: not a time")
    warnings = []
    if sec == 0 and nanosec == 0:
        warnings.append("header.stamp is 0 (unset): consumers get no capture time")
    if not header.frame_id:
        warnings.append("header.frame_id is empty: consumers cannot tell the camera frame")
    return warnings


def _check_size(width: int, height: int, max_pixels: int, what: str) -> None:
    if width * height > max_pixels:
        raise MessageError(f"{what} of {width}x{height} pixels is larger than the "
                           f"{max_pixels} pixels this node accepts (parameter "
                           f"max_image_pixels)")


def _encoding_layout(encoding: str) -> tuple[int, int, np.dtype]:
    """(bytes per channel, channels, dtype) of a supported encoding."""
    if encoding == "32FC1":
        return 4, 1, np.dtype(np.float32)
    if encoding not in SUPPORTED_ENCODINGS:
        raise MessageError(f"unsupported image encoding {encoding!r}; supported: "
                           f"{', '.join(SUPPORTED_ENCODINGS)}")
    depth_bits, _, typestr, channels = rosbags_image.to_cvtype(encoding)
    return depth_bits // 8, channels, np.dtype(typestr)


def image_msg_to_array(msg, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """sensor_msgs/Image -> HxW (grey, 16-bit or float) or HxWx3/4 BGR(A) array.

    The result is what `FeatureModel.extract` accepts; RGB, Bayer and YUV
    encodings are converted to BGR. 32FC1 values are taken as [0, 1] (the
    model clips values outside); NaN or infinite values are refused. Raises
    MessageError naming the problem.
    """
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    encoding = str(msg.encoding)
    if width == 0 or height == 0:
        raise MessageError(f"image is empty: {width}x{height} pixels (encoding {encoding!r})")
    _check_size(width, height, max_pixels, "image")
    bytes_per_channel, channels, dtype = _encoding_layout(encoding)
    row_bytes = width * channels * bytes_per_channel
    if step < row_bytes:
        raise MessageError(f"image step {step} is smaller than width * bytes per pixel = "
                           f"{width} * {channels * bytes_per_channel} = {row_bytes} "
                           f"(encoding {encoding!r})")
    data = memoryview(msg.data).cast("B")
    if len(data) != step * height:
        relation = "fewer" if len(data) < step * height else "more"
        raise MessageError(f"image data has {len(data)} bytes, {relation} than step * height = "
                           f"{step} * {height} = {step * height} (width, height or step is "
                           f"wrong)")
    rows = np.frombuffer(data, np.uint8, count=step * height).reshape(height, step)
    pixels = np.ascontiguousarray(rows[:, :row_bytes]).view(dtype)
    shape = (height, width) if channels == 1 else (height, width, channels)
    image = pixels.reshape(shape)
    if dtype.itemsize > 1 and bool(msg.is_bigendian) != (sys.byteorder == "big"):
        image = image.byteswap()
    if dtype == np.float32 and not np.isfinite(image).all():
        bad = int(np.count_nonzero(~np.isfinite(image)))
        raise MessageError(f"32FC1 image contains {bad} NaN or infinite pixel values")
    if encoding in PASS_THROUGH_ENCODINGS:
        return image
    target = "bgr8" if bytes_per_channel == 1 else "bgr16"
    try:
        return rosbags_image.convert_color(image, encoding, target)
    except Exception as exc:  # cv2.error for e.g. odd-sized Bayer/YUV images
        raise MessageError(f"cannot convert {encoding!r} image of {width}x{height} to "
                           f"{target}: {exc}") from exc


def compressed_image_size(data) -> tuple[int, int] | None:
    """(width, height) a JPEG or PNG header declares, read without decoding;
    None for other formats or a header that does not say."""
    data = bytes(data[:65536]) if len(data) > 65536 else bytes(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        return None
    position = 2
    while position + 4 <= len(data):  # JPEG segments: FF marker, 2-byte length
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            position += 2
            continue
        if marker == 0xDA:  # start of scan: no frame header before it
            return None
        length = int.from_bytes(data[position + 2:position + 4], "big")
        # Start of frame (SOF0-3, 5-7, 9-11, 13-15): precision, height, width.
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD,
                      0xCE, 0xCF) and position + 9 <= len(data):
            height = int.from_bytes(data[position + 5:position + 7], "big")
            width = int.from_bytes(data[position + 7:position + 9], "big")
            return (width, height) if height else None  # 0: height given later (DNL)
        position += 2 + length
    return None


def compressed_msg_to_array(msg, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """sensor_msgs/CompressedImage (JPEG, PNG, ...) -> BGR or grey array.

    JPEG and PNG images larger than `max_pixels` are refused from their header,
    before decoding; other formats after decoding (OpenCV's own limit,
    OPENCV_IO_MAX_IMAGE_PIXELS, 2^30 pixels by default, bounds the decoder)."""
    import cv2

    fmt = str(msg.format)
    if "compresseddepth" in fmt.lower():
        raise MessageError(f"compressedDepth images are not supported (format {fmt!r})")
    data = np.frombuffer(memoryview(msg.data).cast("B"), np.uint8)
    if data.size == 0:
        raise MessageError(f"compressed image is empty (0 bytes, format {fmt!r})")
    declared = compressed_image_size(data)
    if declared is not None:
        _check_size(*declared, max_pixels, f"compressed image (format {fmt!r})")
    try:
        image = cv2.imdecode(data, cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH)
    except cv2.error as exc:  # e.g. a size above OpenCV's own limit
        raise MessageError(f"cannot decode compressed image ({data.size} bytes, format "
                           f"{fmt!r}): {str(exc).strip().splitlines()[-1]}") from exc
    if image is None or image.size == 0:
        raise MessageError(f"cannot decode compressed image ({data.size} bytes, format "
                           f"{fmt!r}): corrupt or unsupported data")
    _check_size(image.shape[1], image.shape[0], max_pixels,
                f"compressed image (format {fmt!r})")
    return image


def image_msg(image: np.ndarray, header, encoding: str | None = None):
    """numpy -> sensor_msgs/Image. HxW uint8 -> mono8, HxWx3 uint8 -> bgr8
    unless `encoding` says otherwise (bgr8 data is converted for rgb8)."""
    import cv2
    from sensor_msgs.msg import Image

    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (
            image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"image_msg publishes HxW or HxWx3 uint8 arrays; got "
                         f"{image.shape} {image.dtype}")
    encoding = encoding or ("mono8" if image.ndim == 2 else "bgr8")
    if encoding not in ("mono8", "bgr8", "rgb8"):
        raise ValueError(f"image_msg publishes mono8, bgr8 or rgb8; got {encoding!r}")
    if image.ndim == 2 and encoding != "mono8":
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if encoding == "mono8" and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif encoding == "rgb8":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    image = np.ascontiguousarray(image)
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(image.strides[0])
    msg.data = array.array("B", image.tobytes())
    return msg


def compressed_image_msg(image: np.ndarray, header, quality: int = 90):
    """numpy BGR/grey uint8 -> sensor_msgs/CompressedImage (JPEG)."""
    import cv2
    from sensor_msgs.msg import CompressedImage

    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for a {image.shape} {image.dtype} array")
    msg = CompressedImage()
    msg.header = header
    msg.format = "jpeg"
    msg.data = array.array("B", encoded.tobytes())
    return msg


def features_to_keypoints_msg(features: Features, header, model: str, session_id: int,
                              sequence: int):
    """Features -> edgepoint_msgs/Keypoints (header copied from the source image)."""
    from edgepoint_msgs.msg import Keypoints

    msg = Keypoints()
    msg.header = header
    msg.image_width, msg.image_height = (int(v) for v in features.image_size)
    msg.model = model
    msg.session_id = int(session_id)
    msg.sequence = int(sequence)
    msg.x = array.array("f", np.ascontiguousarray(features.keypoints[:, 0]).tobytes())
    msg.y = array.array("f", np.ascontiguousarray(features.keypoints[:, 1]).tobytes())
    msg.scores = array.array("f", features.scores.tobytes())
    msg.descriptor_dim = int(features.descriptor_dim)
    if features.descriptor_type == "binary":
        msg.descriptor_type = Keypoints.DESCRIPTOR_BINARY
        msg.binary_descriptors = array.array("B", features.descriptors.tobytes())
    else:
        msg.descriptor_type = Keypoints.DESCRIPTOR_FLOAT32
        msg.descriptors = array.array("f", features.descriptors.tobytes())
    return msg


def keypoints_msg_to_features(msg) -> Features:
    """edgepoint_msgs/Keypoints -> Features; MessageError names any inconsistency
    (array lengths, NaN values, a stamp that is not a time, optional arrays
    neither empty nor of length N)."""
    from edgepoint_msgs.msg import Keypoints

    check_header(msg.header)
    x = np.frombuffer(msg.x, np.float32) if len(msg.x) else np.zeros(0, np.float32)
    y = np.frombuffer(msg.y, np.float32) if len(msg.y) else np.zeros(0, np.float32)
    scores = np.frombuffer(msg.scores, np.float32) if len(msg.scores) else np.zeros(0, np.float32)
    n = len(x)
    if len(y) != n or len(scores) != n:
        raise MessageError(f"Keypoints arrays differ in length: {n} x, {len(y)} y, "
                           f"{len(scores)} scores")
    if n and not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise MessageError("Keypoints contain NaN or infinite coordinates")
    for name in ("track_ids", "track_ages", "x_normalized", "y_normalized"):
        length = len(getattr(msg, name))
        if length not in (0, n):
            raise MessageError(f"Keypoints {name} has {length} values for {n} keypoints "
                               f"(must be empty or one per keypoint)")
    dim = int(msg.descriptor_dim)
    if dim <= 0:
        raise MessageError(f"Keypoints descriptor_dim must be > 0; got {dim}")
    if msg.descriptor_type == Keypoints.DESCRIPTOR_FLOAT32:
        kind, cols, values = "float32", dim, msg.descriptors
        data = np.frombuffer(values, np.float32) if len(values) else np.zeros(0, np.float32)
    elif msg.descriptor_type == Keypoints.DESCRIPTOR_BINARY:
        kind, cols, values = "binary", (dim + 7) // 8, msg.binary_descriptors
        data = np.frombuffer(values, np.uint8) if len(values) else np.zeros(0, np.uint8)
    else:
        raise MessageError(f"Keypoints descriptor_type {msg.descriptor_type} is neither "
                           f"DESCRIPTOR_FLOAT32 (0) nor DESCRIPTOR_BINARY (1)")
    if data.size != n * cols:
        raise MessageError(f"Keypoints carry {data.size} {kind} descriptor values for {n} "
                           f"keypoints of dimension {dim}; expected {n * cols}")
    if kind == "float32" and n and not np.isfinite(data).all():
        raise MessageError("Keypoints descriptors contain NaN or infinite values")
    return Features(np.stack([x, y], axis=1), scores, data.reshape(n, cols),
                    (int(msg.image_width), int(msg.image_height)), kind, dim)


def matches_fields(*, reference_stamp_ns: int, session_id: int, reference_sequence: int,
                   current_sequence: int, reference_num_keypoints: int,
                   current_num_keypoints: int, reference_indices, current_indices,
                   distances, verification) -> dict:
    """The edgepoint_msgs/Matches fields (all but header; reference_stamp as
    `reference_stamp_ns`), as ints and numpy arrays. `verification` is a
    `geometry.Verification`; Matches.inliers stays empty when its method is
    "none" (every match accepted, nothing verified)."""
    inliers = (np.zeros(0, bool) if verification.method == "none"
               else np.asarray(verification.inliers, bool))
    return {
        "reference_stamp_ns": int(reference_stamp_ns),
        "session_id": int(session_id),
        "reference_sequence": int(reference_sequence),
        "current_sequence": int(current_sequence),
        "reference_num_keypoints": int(reference_num_keypoints),
        "current_num_keypoints": int(current_num_keypoints),
        "reference_indices": np.asarray(reference_indices).astype(np.uint32),
        "current_indices": np.asarray(current_indices).astype(np.uint32),
        "distances": np.asarray(distances).astype(np.float32),
        "verification": int(verification.code),
        "inliers": inliers,
    }
