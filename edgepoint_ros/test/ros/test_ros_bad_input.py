"""Bad input and bad parameters: a clear error naming the problem, no crash,
and the node serves the next good input. (test_ros_pipeline.py covers the
first cases: unsupported encoding, short data, step smaller than a row, 0x0,
NaN in 32FC1, corrupt or empty JPEG, descriptor count, float -> binary.)

Decided behaviour, per field:
* Image: data longer than step * height is an error (width, height or step is
  wrong); an image over `max_image_pixels` is refused from its declared size,
  also a JPEG/PNG whose header declares it ("decompression bomb"), before any
  buffer is allocated; 32FC1 +-inf is refused like NaN, finite values outside
  [0, 1] are clipped.
* Header: a stamp that is not a time (sec < 0, nanosec >= 10^9) is an error;
  an unset stamp (0) or an empty frame_id is processed and copied unchanged
  into the Keypoints, with a (throttled) warning and the header_warnings count.
* Keypoints into the matcher: zero keypoints is a valid frame (no matches, no
  error); inconsistent arrays, NaN, an unknown descriptor type or dimension 0
  are errors; a descriptor size or type change (another model) starts
  tracking over, never comparing the two.
* Parameters: a bad value at start-up stops the node with exit status 1 and the
  reason; at run time it is rejected with the reason and the node keeps its
  model and keeps serving.

Module processes: /bad (ORB extractor, reliable input, + matcher) and
/bad_match (matcher fed hand-made Keypoints); the misconfigured nodes start
together at the beginning and are checked one by one.
"""
from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from edgepoint_msgs.msg import Keypoints, Matches
from rcl_interfaces.srv import SetParametersAtomically
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

import ros_harness as harness
from edgepoint_ros.features import Features
from edgepoint_ros.conversions import (MessageError, check_header, compressed_image_size,
                                           compressed_msg_to_array,
                                           features_to_keypoints_msg, image_msg_to_array)
from edgepoint_ros.ros.qos import OUTPUT_QOS, qos_profile

FAST = {"diagnostics_period": 0.2}
ORB = {**FAST, "model": "orb", "max_keypoints": 300, "qos": "reliable"}
EXTRACTOR = "/bad/extractor"
MATCHER = "/bad_match/matcher"
_seconds = itertools.count(20000)


def next_stamp():
    return harness.stamp_of(next(_seconds), 500_000_000)


# ---- test data -----------------------------------------------------------------------
def _jpeg(width=64, height=48) -> bytes:
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()


def _jpeg_declaring(width: int, height: int) -> bytes:
    """A small valid JPEG whose frame header (SOF0) claims width x height."""
    data = bytearray(_jpeg())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 7] = height.to_bytes(2, "big")
    data[sof + 7:sof + 9] = width.to_bytes(2, "big")
    return bytes(data)


def _png_declaring(width: int, height: int) -> bytes:
    data = bytearray(cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes())
    data[16:20], data[20:24] = width.to_bytes(4, "big"), height.to_bytes(4, "big")
    return bytes(data)


# ---- without ROS: the checks themselves ------------------------------------------------
def test_compressed_headers_are_read_without_decoding():
    assert compressed_image_size(_jpeg(64, 48)) == (64, 48)
    progressive = cv2.imencode(".jpg", np.zeros((30, 50, 3), np.uint8),
                               [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert compressed_image_size(progressive) == (50, 30)
    assert compressed_image_size(cv2.imencode(".png", np.zeros((7, 9), np.uint8))[1]) == (9, 7)
    assert compressed_image_size(_jpeg_declaring(30000, 30000)) == (30000, 30000)
    assert compressed_image_size(b"\xff\xd8\xff") is None  # truncated: the decoder decides
    assert compressed_image_size(cv2.imencode(".bmp", np.zeros((4, 4), np.uint8))[1]) is None


@pytest.mark.parametrize("data, what", [
    (_jpeg_declaring(30000, 30000), "30000x30000"),  # 900 Mpixel: 2.7 GB if decoded
    (_png_declaring(40000, 40000), "40000x40000"),
])
def test_decompression_bombs_are_refused_before_decoding(data, what):
    msg = CompressedImage(format="jpeg")
    msg.data = data
    with pytest.raises(MessageError, match=f"compressed image .* of {what} pixels is larger "
                                           f"than the 100000000 pixels"):
        compressed_msg_to_array(msg)
    small = CompressedImage(format="jpeg")
    small.data = _jpeg(64, 48)
    with pytest.raises(MessageError, match="larger than the 1000 pixels"):
        compressed_msg_to_array(small, max_pixels=1000)


def test_image_size_limit_and_data_length_are_checked():
    msg = harness.raw_image_msg(bytes(16), 20000, 20000, "mono8", 20000, None)
    with pytest.raises(MessageError, match="image of 20000x20000 pixels is larger"):
        image_msg_to_array(msg)
    msg = harness.raw_image_msg(bytes(6 * 4 * 3 + 5), 4, 6, "bgr8", 12, None)
    with pytest.raises(MessageError, match="77 bytes, more than step \\* height = 12 \\* 6"):
        image_msg_to_array(msg)
    msg = harness.raw_image_msg(bytes(6 * 4 * 3), 4, 6, "bgr8", 12, None)
    with pytest.raises(MessageError, match="larger than the 23 pixels"):
        image_msg_to_array(msg, max_pixels=23)


def test_header_checks():
    header = Header(frame_id="camera")
    header.stamp = harness.stamp_of(12, 5)
    assert check_header(header) == []
    header.stamp = harness.stamp_of(-3, 0)
    with pytest.raises(MessageError, match=r"header.stamp.sec is negative \(-3\)"):
        check_header(header)
    header.stamp = harness.stamp_of(12, 1_500_000_000)
    with pytest.raises(MessageError, match="nanosec is 1500000000, not < 10\\^9"):
        check_header(header)
    warnings = check_header(Header())
    assert any("stamp is 0" in w for w in warnings)
    assert any("frame_id is empty" in w for w in warnings)


# ---- processes -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def broken_weights(tmp_path_factory):
    directory = tmp_path_factory.mktemp("broken")
    corrupt = directory / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07" + bytes(range(256)) * 40)
    return {"corrupt": corrupt, "missing": directory / "missing.onnx"}


STARTUP_FAILURES = {
    "unknown device": ({"device": "tpu"}, "device must be one of"),
    "unknown image transport": ({"image_transport": "theora"},
                                "image_transport must be one of raw, compressed; got 'theora'"),
    "missing weights": ({"model": "xfeat", "weights": "{missing}"}, "XFeat weights not found"),
    "corrupt ONNX": ({"model": "xfeat", "weights": "{corrupt}", "runtime": "onnxruntime"},
                     "cannot load ONNX model"),
    "device absent without fallback": ({"model": "xfeat", "device": "cuda", "fallback": False},
                                       "cannot run here (fallback=false)"),
    "negative threshold": ({"score_threshold": -0.5}, "score_threshold must be >= 0"),
    "resize too small": ({"resize_width": 8, "resize_height": 8},
                         "resize_width must be 0 (native size) or in [32, 16384]"),
    "max_image_pixels 0": ({"max_image_pixels": 0}, "max_image_pixels must be >= 1"),
}


@pytest.fixture(scope="module")
def processes(broken_weights):
    started = {
        "extractor": harness.start_node("extractor", "/bad", ORB),
        "jpeg_extractor": harness.start_node("extractor", "/badjpeg",
                                             {**ORB, "image_transport": "compressed"}),
        "matcher": harness.start_node("matcher", "/bad", {**FAST, "verification": "none"}),
        "hand_fed": harness.start_node("matcher", "/bad_match",
                                       {**FAST, "verification": "none"}),
        "fallback": harness.start_node("extractor", "/fallback",
                                       {**FAST, "model": "xfeat", "device": "cuda",
                                        "fallback": True, "warmup_runs": 0,
                                        "precision": "fp32"}),   # no XFeat INT8 calibration
    }
    for index, (case, (parameters, _)) in enumerate(STARTUP_FAILURES.items()):
        parameters = {key: value.format(**broken_weights) if isinstance(value, str) else value
                      for key, value in parameters.items()}
        started[case] = harness.start_node("extractor", f"/broken{index}",
                                           {**FAST, "model": "orb", **parameters})
    with harness.stopped(*started.values()):
        yield started


@pytest.fixture(scope="module")
def probe():
    probe = harness.make_probe("test_ros_bad_input")
    yield probe
    probe.close()


@pytest.fixture(scope="module")
def diagnostics(probe):
    return probe.record(DiagnosticArray, "/diagnostics", 100, keep=3000)


class Extractor:
    """An extractor under test (/bad: raw images; /badjpeg: compressed):
    its image publisher, its Keypoints, its parameter service.
    `keypoints_subscribers`: the probe's and the other nodes' subscriptions."""

    def __init__(self, probe, diagnostics, process, namespace="/bad", transport="raw",
                 keypoints_subscribers=1):
        self.probe, self.process = probe, process
        self.name, self.transport = f"{namespace}/extractor", transport
        compressed = transport == "compressed"
        image_topic = "image/compressed" if compressed else "image"
        self.publisher = probe.publisher(CompressedImage if compressed else Image,
                                         f"{namespace}/{image_topic}", qos_profile("reliable"))
        self.keypoints = probe.record(Keypoints, f"{namespace}/keypoints", OUTPUT_QOS)
        self.client = probe.node.create_client(SetParametersAtomically,
                                               f"{self.name}/set_parameters_atomically")
        assert probe.wait_for_subscribers(self.publisher)
        assert probe.wait_for_recordings(self.keypoints)
        # the extractor's ends of the same links (its keypoints reach the probe)
        assert harness.wait_for_links(diagnostics, {self.name: {
            f"{image_topic}_publishers": 1,
            "keypoints_subscribers": keypoints_subscribers}}), process.log_tail()
        assert self.client.wait_for_service(timeout_sec=10.0)

    def publish(self, msg):
        assert isinstance(msg, CompressedImage) == (self.transport == "compressed"), \
            f"{self.name} takes {self.transport} images, not {type(msg).__name__}"
        self.publisher.publish(msg)

    def served(self, msg, timeout=10.0):
        """Publish `msg`; its Keypoints (same stamp and frame_id), or None."""
        self.publish(msg)
        return self.keypoints.wait_for(
            lambda m: harness.same_stamp(m.header.stamp, msg.header.stamp)
            and m.header.frame_id == msg.header.frame_id, timeout)

    def good(self, timeout=10.0):
        image = harness.natural_image()
        msg = (harness.image_to_msg(image, "bgr8", next_stamp()) if self.transport == "raw"
               else harness.compressed_msg(cv2.imencode(".jpg", image)[1].tobytes(),
                                           next_stamp()))
        return self.served(msg, timeout)

    def set(self, **values):
        """Set parameters together (all or none); the SetParametersResult."""
        request = SetParametersAtomically.Request(parameters=[
            Parameter(name, value=value).to_parameter_msg() for name, value in values.items()])
        future = self.client.call_async(request)
        assert self.probe.wait_for_future(future, 60.0), "set_parameters did not answer"
        return future.result().result


@pytest.fixture(scope="module")
def extractor(processes, probe, diagnostics):
    harness.wait_ready(processes["extractor"])
    harness.wait_ready(processes["matcher"])
    return Extractor(probe, diagnostics, processes["extractor"],
                     keypoints_subscribers=2)  # the probe and /bad/matcher


@pytest.fixture(scope="module")
def jpeg_extractor(processes, probe, diagnostics):
    harness.wait_ready(processes["jpeg_extractor"])
    return Extractor(probe, diagnostics, processes["jpeg_extractor"], "/badjpeg", "compressed")


def _fresh(diagnostics, name):
    diagnostics.clear()
    values = harness.wait_for_diagnostics(diagnostics, name, lambda v: True, 10.0)
    assert values is not None, f"no /diagnostics from {name}"
    return values


# ---- bad images ----------------------------------------------------------------------------
def _float_image(value):
    image = np.full((48, 64), 0.5, np.float32)
    image[10, 10] = value
    return image


BAD_IMAGES = {
    "data longer than step*height": (
        lambda s: harness.raw_image_msg(bytes(640 * 3 * 480 + 100), 640, 480, "bgr8", 1920, s),
        "more than step * height"),
    "20000x20000 declared": (
        lambda s: harness.raw_image_msg(bytes(64), 20000, 20000, "mono8", 20000, s),
        "image of 20000x20000 pixels is larger than the 100000000 pixels"),
    "zero width": (
        lambda s: harness.raw_image_msg(b"", 0, 480, "mono8", 0, s), "image is empty: 0x480"),
    "upper-case encoding": (
        lambda s: harness.raw_image_msg(bytes(12), 2, 2, "BGR8", 6, s),
        "unsupported image encoding 'BGR8'"),
    "+inf in 32FC1": (
        lambda s: harness.image_to_msg(_float_image(np.inf), "32FC1", s),
        "1 NaN or infinite pixel values"),
    "-inf in 32FC1": (
        lambda s: harness.image_to_msg(_float_image(-np.inf), "32FC1", s),
        "1 NaN or infinite pixel values"),
    "JPEG bomb": (
        lambda s: harness.compressed_msg(_jpeg_declaring(30000, 30000), s),
        "compressed image (format 'jpeg') of 30000x30000 pixels is larger"),
    "PNG bomb": (
        lambda s: harness.compressed_msg(_png_declaring(40000, 40000), s, fmt="png"),
        "of 40000x40000 pixels is larger"),
    "negative stamp": (
        lambda s: harness.image_to_msg(harness.natural_image(), "bgr8",
                                       harness.stamp_of(-5, 0)),
        "header.stamp.sec is negative (-5)"),
    "nanoseconds >= 10^9": (
        lambda s: harness.image_to_msg(harness.natural_image(), "bgr8",
                                       harness.stamp_of(s.sec, 2_000_000_000)),
        "header.stamp.nanosec is 2000000000"),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_bad_image_is_named_counted_and_the_next_frame_served(extractor, jpeg_extractor,
                                                             diagnostics, case):
    make, problem = BAD_IMAGES[case]
    bad = make(next_stamp())
    node = jpeg_extractor if isinstance(bad, CompressedImage) else extractor
    before = int(_fresh(diagnostics, node.name)["errors"])
    node.publish(bad)
    values = harness.wait_for_diagnostics(
        diagnostics, node.name, lambda v: int(v["errors"]) > before, 10.0)
    assert values is not None, node.process.log_tail()
    assert int(values["errors"]) == before + 1
    assert problem in values["last_error"], values["last_error"]
    assert node.process.alive()
    keypoints = node.good()
    assert keypoints is not None and len(keypoints.x) > 100


def test_a_huge_frame_id_is_not_copied_into_the_log(extractor, diagnostics):
    frame_id = "camera_" + "z" * 5000
    before = int(_fresh(diagnostics, EXTRACTOR)["errors"])
    extractor.publish(harness.raw_image_msg(bytes(10), 64, 48, "mono8", 64, next_stamp(),
                                            frame_id))
    values = harness.wait_for_diagnostics(
        diagnostics, EXTRACTOR, lambda v: int(v["errors"]) > before, 10.0)
    assert values is not None and "fewer than step * height" in values["last_error"]
    assert "z" * 50 + "...'" in values["last_error"] and "z" * 100 not in values["last_error"]
    assert "z" * 100 not in extractor.process.log()


def test_float_images_outside_0_1_are_clipped_not_refused(extractor):
    ramp = np.tile(np.linspace(-0.5, 1.5, 640, dtype=np.float32), (480, 1))
    ramp += (harness.natural_image()[:, :, 1].astype(np.float32) / 255.0) * 0.5
    keypoints = extractor.served(harness.image_to_msg(ramp, "32FC1", next_stamp()))
    assert keypoints is not None and len(keypoints.x) > 0


@pytest.mark.parametrize("field", ["stamp", "frame_id"])
def test_an_unset_header_field_is_passed_on_with_a_warning(extractor, diagnostics, field):
    before = int(_fresh(diagnostics, EXTRACTOR).get("header_warnings", 0))
    stamp = harness.stamp_of(0, 0) if field == "stamp" else next_stamp()
    frame_id = "" if field == "frame_id" else "unstamped_camera"
    msg = harness.image_to_msg(harness.natural_image(), "bgr8", stamp, frame_id)
    keypoints = extractor.served(msg)
    assert keypoints is not None, extractor.process.log_tail()
    assert keypoints.header.frame_id == frame_id  # copied as it is
    assert harness.same_stamp(keypoints.header.stamp, stamp)
    values = harness.wait_for_diagnostics(
        diagnostics, EXTRACTOR, lambda v: int(v.get("header_warnings", 0)) > before, 10.0)
    assert values is not None
    text = "header.stamp is 0 (unset)" if field == "stamp" else "header.frame_id is empty"
    assert extractor.process.wait_for_log(text, 5.0)


def test_max_image_pixels_changes_at_run_time(extractor, diagnostics):
    try:
        assert extractor.set(max_image_pixels=640 * 480 - 1).successful
        before = int(_fresh(diagnostics, EXTRACTOR)["errors"])
        extractor.publish(harness.image_to_msg(harness.natural_image(), "bgr8", next_stamp()))
        values = harness.wait_for_diagnostics(
            diagnostics, EXTRACTOR, lambda v: int(v["errors"]) > before, 10.0)
        assert values is not None
        assert "larger than the 307199 pixels this node accepts (parameter max_image_pixels)" \
            in values["last_error"]
        refused = extractor.set(max_image_pixels=-1)
        assert not refused.successful and "max_image_pixels must be >= 1" in refused.reason
    finally:
        assert extractor.set(max_image_pixels=100_000_000).successful
    assert extractor.good() is not None


# ---- parameters at run time ----------------------------------------------------------------
RUNTIME_REJECTIONS = {
    "unknown device": ({"device": "tpu"}, "device must be one of"),
    "negative threshold": ({"score_threshold": -1.0}, "score_threshold must be >= 0"),
    "NaN threshold": ({"score_threshold": float("nan")}, "must be a finite number"),
    "huge NMS radius": ({"nms_radius": 1000}, "nms_radius must be in [0, 100]; got 1000"),
    "one resize side": ({"resize_width": 320}, "resize_width and resize_height must be both"),
    "threshold as text": ({"score_threshold": "high"},
                          "parameter score_threshold must be of type float; got 'high'"),
    "read-only qos": ({"qos": "sensor_data"}, "read-only"),
    "missing weights": ({"model": "xfeat", "weights": "/nonexistent/xfeat.onnx"},
                        "XFeat weights not found: /nonexistent/xfeat.onnx"),
    "corrupt weights": ({"model": "xfeat", "weights": "{corrupt}", "runtime": "onnxruntime"},
                        "cannot load ONNX model"),
}


@pytest.mark.parametrize("case", list(RUNTIME_REJECTIONS))
def test_a_bad_parameter_change_is_rejected_and_the_old_model_keeps_serving(
        extractor, broken_weights, case):
    changes, reason = RUNTIME_REJECTIONS[case]
    changes = {key: value.format(**broken_weights) if isinstance(value, str) else value
               for key, value in changes.items()}
    result = extractor.set(**changes)
    assert not result.successful
    assert reason in result.reason, result.reason
    keypoints = extractor.good()
    assert keypoints is not None and keypoints.model == "orb" and len(keypoints.x) > 100
    assert extractor.process.alive()


def test_a_valid_model_change_takes_effect_and_the_matcher_never_mixes_models(
        extractor, probe, diagnostics):
    matches = probe.record(Matches, "/bad/matches", OUTPUT_QOS)
    assert probe.wait_for_recordings(matches)
    assert harness.wait_for_links(diagnostics, {"/bad/matcher": {"matches_subscribers": 1}})
    resets = int(_fresh(diagnostics, "/bad/matcher")["resets"])
    orb_frames = [extractor.good() for _ in range(2)]
    try:
        assert extractor.set(model="sift").successful
        sift_frames = [extractor.good() for _ in range(3)]
        assert {(f.model, f.descriptor_type, f.descriptor_dim) for f in sift_frames} == {
            ("sift", Keypoints.DESCRIPTOR_FLOAT32, 128)}
        values = harness.wait_for_diagnostics(
            diagnostics, "/bad/matcher", lambda v: int(v["resets"]) >= resets + 1, 10.0)
        assert values is not None and int(values["resets"]) == resets + 1
        last = sift_frames[-1]
        assert matches.wait_for(lambda m: harness.same_stamp(m.header.stamp, last.header.stamp),
                                10.0) is not None
    finally:
        assert extractor.set(model="orb").successful
    assert extractor.good().model == "orb"
    frames = {(f.session_id, f.sequence): f for f in orb_frames + sift_frames}
    for match in matches.snapshot():
        reference = frames.get((match.session_id, match.reference_sequence))
        current = frames.get((match.session_id, match.current_sequence))
        if reference is not None and current is not None:
            assert reference.model == current.model, "a Matches paired ORB and SIFT frames"
    first_sift = sift_frames[0]
    assert not [m for m in matches.snapshot()
                if harness.same_stamp(m.header.stamp, first_sift.header.stamp)]


# ---- parameters at start-up ------------------------------------------------------------------
@pytest.mark.parametrize("case", list(STARTUP_FAILURES))
def test_a_node_with_a_bad_setting_refuses_to_start_naming_it(processes, case):
    process = processes[case]
    assert process.wait(60.0) == 1, process.log_tail()
    assert STARTUP_FAILURES[case][1] in process.log(), process.log()
    assert "cannot start:" in process.log()


def test_an_absent_device_with_fallback_runs_on_the_cpu_and_says_so(processes):
    process = harness.wait_ready(processes["fallback"])
    log = process.log()
    assert "[WARN]" in log and "falling back to" in log, log
    assert "requested runtime=auto device=cuda" in log


# ---- bad Keypoints into the matcher -------------------------------------------------------------
def _features(n=150, dim=64, seed=0):
    rng = np.random.default_rng(seed)
    descriptors = rng.standard_normal((n, dim)).astype(np.float32)
    descriptors /= np.linalg.norm(descriptors, axis=1, keepdims=True)
    return Features(rng.uniform(10, 470, (n, 2)), rng.uniform(0, 1, n), descriptors,
                    (640, 480), "float32", dim)


class HandFed:
    """Keypoints published by this process into the /bad_match matcher."""

    def __init__(self, probe, diagnostics, process):
        self.process = process
        self.publisher = probe.publisher(Keypoints, "/bad_match/keypoints", OUTPUT_QOS)
        self.matches = probe.record(Matches, "/bad_match/matches", OUTPUT_QOS)
        assert probe.wait_for_subscribers(self.publisher)
        assert probe.wait_for_recordings(self.matches)
        # the matcher's ends of both links
        assert harness.wait_for_links(diagnostics, {MATCHER: {
            "keypoints_publishers": 1, "matches_subscribers": 1}}), process.log_tail()
        self.sequence = itertools.count()

    def message(self, features, session=77):
        header = Header(frame_id="camera", stamp=next_stamp())
        return features_to_keypoints_msg(features, header, "test", session,
                                         next(self.sequence))

    def send(self, msg, expect_matches=True):
        self.publisher.publish(msg)
        if not expect_matches:
            return None
        found = self.matches.wait_for(
            lambda m: harness.same_stamp(m.header.stamp, msg.header.stamp), 10.0)
        assert found is not None, self.process.log_tail()
        return found


@pytest.fixture(scope="module")
def hand_fed(processes, probe, diagnostics):
    feeder = HandFed(probe, diagnostics, harness.wait_ready(processes["hand_fed"]))
    feeder.send(feeder.message(_features()), expect_matches=False)
    # The matcher keeps only the newest frame: under load a second frame sent at
    # once could replace the first before the worker took it (counted as skipped).
    assert feeder.process.wait_for_log("first Keypoints frame", 10.0), feeder.process.log_tail()
    feeder.send(feeder.message(_features()))  # the stream is matching
    return feeder


def _set(msg, name, value):
    setattr(msg, name, value)
    return msg


def _bad_stamp(msg):
    msg.header.stamp.nanosec = 1_000_000_000
    return msg


def _nan_x(msg):
    x = np.asarray(msg.x, np.float32).copy()
    x[3] = np.nan
    msg.x = x.tolist()
    return msg


def _nan_descriptor(msg):
    values = np.asarray(msg.descriptors, np.float32).copy()
    values[5] = np.nan
    msg.descriptors = values.tolist()
    return msg


BAD_KEYPOINTS = {
    "scores shorter": (lambda m: _set(m, "scores", m.scores[:-1]),
                       "differ in length: 150 x, 150 y, 149 scores"),
    "NaN coordinate": (_nan_x, "NaN or infinite coordinates"),
    "unknown descriptor type": (lambda m: _set(m, "descriptor_type", 9), "descriptor_type 9"),
    "descriptor_dim 0": (lambda m: _set(m, "descriptor_dim", 0), "descriptor_dim must be > 0"),
    "NaN descriptor": (_nan_descriptor, "descriptors contain NaN or infinite values"),
    "track_ids of another length": (lambda m: _set(m, "track_ids", [1, 2, 3]),
                                    "track_ids has 3 values for 150 keypoints"),
    "stamp nanoseconds": (_bad_stamp,
                          "header.stamp.nanosec is 1000000000"),
}


@pytest.mark.parametrize("case", list(BAD_KEYPOINTS))
def test_bad_keypoints_are_named_counted_and_the_next_frame_matched(hand_fed, diagnostics,
                                                                    case):
    corrupt, problem = BAD_KEYPOINTS[case]
    before = int(_fresh(diagnostics, MATCHER)["errors"])
    hand_fed.send(corrupt(hand_fed.message(_features())), expect_matches=False)
    values = harness.wait_for_diagnostics(
        diagnostics, MATCHER, lambda v: int(v["errors"]) > before, 10.0)
    assert values is not None, hand_fed.process.log_tail()
    assert int(values["errors"]) == before + 1 and problem in values["last_error"], values
    found = hand_fed.send(hand_fed.message(_features()))
    assert len(found.distances) == 150  # same descriptors: all match again
    assert hand_fed.process.alive()


def test_a_frame_without_keypoints_is_valid_and_matching_recovers(hand_fed, diagnostics):
    before = int(_fresh(diagnostics, MATCHER)["errors"])
    empty = hand_fed.send(hand_fed.message(_features(n=0)))
    assert len(empty.distances) == 0 and empty.current_num_keypoints == 0
    following = hand_fed.send(hand_fed.message(_features()))
    assert following.current_num_keypoints == 150
    recovered = hand_fed.send(hand_fed.message(_features()))
    assert len(recovered.distances) == 150
    assert int(_fresh(diagnostics, MATCHER)["errors"]) == before


def test_a_descriptor_size_change_starts_over_instead_of_comparing(hand_fed, diagnostics):
    resets = int(_fresh(diagnostics, MATCHER)["resets"])
    wider = hand_fed.message(_features(dim=128))
    hand_fed.send(wider, expect_matches=False)
    values = harness.wait_for_diagnostics(
        diagnostics, MATCHER, lambda v: int(v["resets"]) == resets + 1, 10.0)
    assert values is not None, hand_fed.process.log_tail()
    assert hand_fed.process.wait_for_log("float32/64 to float32/128", 5.0)
    assert hand_fed.matches.wait_for(
        lambda m: harness.same_stamp(m.header.stamp, wider.header.stamp), 0.5) is None
    found = hand_fed.send(hand_fed.message(_features(dim=128)))
    assert len(found.distances) == 150
    hand_fed.send(hand_fed.message(_features()), expect_matches=False)  # back to 64
