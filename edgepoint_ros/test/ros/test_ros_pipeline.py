"""The nodes as real processes over real DDS (Fast DDS on loopback).

One set of node processes serves the whole module (started in parallel once):
    /learned  extractor with config/extractor.yaml as shipped (the learned default model)
    /orb      extractor (model orb: fast, deterministic) + matcher, reliable image QoS
    /match    matcher alone (verification none), fed hand-made Keypoints
Short-lived processes (player, a misconfigured extractor) are started by the
tests that need them. The test talks to the nodes through a real rclpy node
(`Probe`) in this process.
"""
from __future__ import annotations

import itertools
import re
import time

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from edgepoint_msgs.msg import Keypoints, Matches
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

import ros_harness as harness
from edgepoint_ros.config import ExtractorConfig
from edgepoint_ros.features import Features
from edgepoint_ros.conversions import features_to_keypoints_msg
from edgepoint_ros.ros.qos import OUTPUT_QOS, qos_profile

FAST = {"diagnostics_period": 0.2}
RELIABLE = qos_profile("reliable")
_seconds = itertools.count(1000)


def next_stamp():
    """A fresh, increasing stamp for every frame this module publishes."""
    return harness.stamp_of(next(_seconds), 250_000_000)


# ---- fixtures ------------------------------------------------------------------
@pytest.fixture(scope="module")
def processes():
    started = {
        "learned": harness.start_node("extractor", "/learned", FAST),
        "orb": harness.start_node("extractor", "/orb", {**FAST, "model": "orb",
                                                        "qos": "reliable", "max_keypoints": 500}),
        "orb_jpeg": harness.start_node("extractor", "/orbjpeg", {
            **FAST, "model": "orb", "qos": "reliable", "max_keypoints": 500,
            "image_transport": "compressed"}),
        "orb_matcher": harness.start_node("matcher", "/orb", FAST),
        # No geometric verification: the hand-made Keypoints below have random positions.
        "matcher": harness.start_node("matcher", "/match", {**FAST, "verification": "none"}),
    }
    with harness.stopped(*started.values()):
        yield started


@pytest.fixture(scope="module")
def probe():
    probe = harness.make_probe("test_ros_pipeline")
    yield probe
    probe.close()


@pytest.fixture(scope="module")
def diagnostics(probe):
    return probe.record(DiagnosticArray, "/diagnostics", 100, keep=2000)


@pytest.fixture(scope="module")
def orb(processes, probe, diagnostics):
    harness.wait_ready(processes["orb"])
    harness.wait_ready(processes["orb_matcher"])
    return ExtractorUnderTest(probe, diagnostics, "/orb", processes["orb"], RELIABLE,
                              keypoints_subscribers=2)  # the probe and /orb/matcher


@pytest.fixture(scope="module")
def orb_jpeg(processes, probe, diagnostics):
    harness.wait_ready(processes["orb_jpeg"])
    return ExtractorUnderTest(probe, diagnostics, "/orbjpeg", processes["orb_jpeg"], RELIABLE,
                              "compressed")


@pytest.fixture(scope="module")
def learned(processes, probe, diagnostics):
    harness.wait_ready(processes["learned"])
    return ExtractorUnderTest(probe, diagnostics, "/learned", processes["learned"], RELIABLE)


class ExtractorUnderTest:
    """Publishers and recordings around one extractor namespace
    (`keypoints_subscribers`: the probe's and the other nodes' subscriptions)."""

    def __init__(self, probe, diagnostics, namespace, process, image_qos, transport="raw",
                 keypoints_subscribers=1):
        self.probe, self.namespace, self.process = probe, namespace, process
        self.name = f"{namespace}/extractor"
        self.transport = transport
        self.topic = f"{namespace}/image" + ("/compressed" if transport == "compressed" else "")
        self.publisher = probe.publisher(
            CompressedImage if transport == "compressed" else Image, self.topic, image_qos)
        self.keypoints = probe.record(Keypoints, f"{namespace}/keypoints", OUTPUT_QOS)
        assert probe.wait_for_subscribers(self.publisher), f"extractor does not subscribe to {self.topic}"
        assert probe.wait_for_recordings(self.keypoints), "extractor does not publish keypoints"
        # the extractor's ends of the same links (its keypoints reach the probe)
        image_topic = self.topic[len(namespace) + 1:]
        assert harness.wait_for_links(diagnostics, {self.name: {
            f"{image_topic}_publishers": 1,
            "keypoints_subscribers": keypoints_subscribers}}), process.log_tail()

    def send(self, msg, timeout=10.0, retry_s=0.0):
        """Publish `msg` and return the Keypoints with its stamp (None on timeout).
        With retry_s > 0 it republishes every retry_s seconds (for best-effort
        subscriptions, which drop what arrives before discovery completes)."""
        publisher = self.publish_of(msg)
        stamp = msg.header.stamp
        attempts, wait = (max(1, round(timeout / retry_s)), retry_s) if retry_s else (1, timeout)
        for _ in range(attempts):
            publisher.publish(msg)
            found = self.keypoints.wait_for(
                lambda m: harness.same_stamp(m.header.stamp, stamp), wait)
            if found is not None:
                return found
        return None

    def publish_of(self, msg):
        """This extractor's image publisher, after checking `msg` is of its transport."""
        assert isinstance(msg, CompressedImage) == (self.transport == "compressed"), \
            f"{self.name} takes {self.transport} images, not {type(msg).__name__}"
        return self.publisher

    def good_frame(self, stamp):
        """A natural 640x480 frame in this extractor's transport."""
        image = harness.natural_image()
        if self.transport == "raw":
            return harness.image_to_msg(image, "bgr8", stamp)
        return harness.compressed_msg(cv2.imencode(".jpg", image)[1].tobytes(), stamp)


def _xy(msg):
    return np.stack([np.asarray(msg.x, np.float32), np.asarray(msg.y, np.float32)], axis=1)


def _diag(diagnostics, name, condition=lambda values: True, timeout=10.0):
    values = harness.wait_for_diagnostics(diagnostics, name, condition, timeout)
    assert values is not None, f"no /diagnostics from {name} satisfying the condition"
    return values


def _fresh_diag(diagnostics, name, timeout=10.0):
    """Diagnostics published after this call (not an older one)."""
    diagnostics.clear()
    return _diag(diagnostics, name, timeout=timeout)


# ---- extractor -------------------------------------------------------------------
def test_image_in_keypoints_out_with_the_learned_default_model(learned):
    config = ExtractorConfig.from_mapping(
        {k: v for k, v in harness.yaml_parameters("extractor").items()
         if k in ExtractorConfig.field_names()})
    image = harness.natural_image()
    msg = harness.image_to_msg(image, "bgr8", next_stamp(), "test_camera")
    # The learned extractor keeps the shipped best-effort QoS: republish until it lands.
    keypoints = learned.send(msg, retry_s=1.0, timeout=30.0)
    assert keypoints is not None, f"no Keypoints; extractor log:\n{learned.process.log_tail()}"

    assert harness.same_stamp(keypoints.header.stamp, msg.header.stamp)
    assert keypoints.header.frame_id == "test_camera"
    assert (keypoints.image_width, keypoints.image_height) == (640, 480)
    assert keypoints.model == config.model
    n = len(keypoints.x)
    assert 100 <= n <= config.max_keypoints
    xy = _xy(keypoints)
    assert (xy >= 0).all() and (xy[:, 0] <= 639).all() and (xy[:, 1] <= 479).all()
    assert np.isfinite(np.asarray(keypoints.scores)).all()
    assert keypoints.descriptor_type == Keypoints.DESCRIPTOR_FLOAT32
    descriptors = np.asarray(keypoints.descriptors, np.float32).reshape(n, -1)
    assert descriptors.shape[1] == keypoints.descriptor_dim > 0
    np.testing.assert_allclose(np.linalg.norm(descriptors, axis=1), 1.0, atol=1e-3)

    # The node publishes what the model computes on the same image in this process.
    from edgepoint_ros.models import create_model
    expected = create_model(config).extract(image)
    assert len(expected) == n
    assert np.median(np.abs(np.sort(expected.keypoints[:, 0]) - np.sort(xy[:, 0]))) < 0.01

    second = learned.send(harness.image_to_msg(image, "bgr8", next_stamp()),
                          retry_s=1.0, timeout=30.0)
    assert second.session_id == keypoints.session_id
    assert second.sequence > keypoints.sequence


def test_every_supported_encoding_gives_the_same_keypoints(orb):
    image = harness.natural_image()
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    reference = orb.send(harness.image_to_msg(image, "bgr8", next_stamp()))
    assert reference is not None and 100 < len(reference.x) <= 500
    padded = np.zeros((480, 640 * 3 + 32), np.uint8)
    padded[:, :640 * 3] = image.reshape(480, -1)
    variants = {
        "rgb8": harness.image_to_msg(image[:, :, ::-1], "rgb8", None),
        "bgra8": harness.image_to_msg(cv2.cvtColor(image, cv2.COLOR_BGR2BGRA), "bgra8", None),
        "rgba8": harness.image_to_msg(cv2.cvtColor(image, cv2.COLOR_BGR2RGBA), "rgba8", None),
        "mono8": harness.image_to_msg(grey, "mono8", None),
        "mono16": harness.image_to_msg(grey.astype(np.uint16) * 257, "mono16", None),
        "bgr8 with row padding": harness.raw_image_msg(padded.tobytes(), 640, 480, "bgr8",
                                                       640 * 3 + 32, None),
    }
    for name, msg in variants.items():
        msg.header.stamp = next_stamp()
        keypoints = orb.send(msg)
        assert keypoints is not None, f"no Keypoints for {name}:\n{orb.process.log_tail()}"
        np.testing.assert_allclose(_xy(keypoints), _xy(reference), atol=1e-4, err_msg=name)
        np.testing.assert_array_equal(np.asarray(keypoints.binary_descriptors),
                                      np.asarray(reference.binary_descriptors), err_msg=name)


def test_compressed_image_in_keypoints_out(orb, orb_jpeg):
    image = harness.natural_image()
    reference = orb.send(harness.image_to_msg(image, "bgr8", next_stamp()))
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    msg = harness.compressed_msg(jpeg.tobytes(), next_stamp(), frame_id="jpeg_camera")
    keypoints = orb_jpeg.send(msg)
    assert keypoints is not None, orb_jpeg.process.log_tail()
    assert keypoints.header.frame_id == "jpeg_camera"
    assert (keypoints.image_width, keypoints.image_height) == (640, 480)
    assert abs(len(keypoints.x) - len(reference.x)) <= 0.2 * len(reference.x)
    assert keypoints.descriptor_type == Keypoints.DESCRIPTOR_BINARY
    assert keypoints.descriptor_dim == 256
    assert len(keypoints.binary_descriptors) == len(keypoints.x) * 32


BAD_INPUTS = {
    "unsupported encoding": (
        lambda stamp: harness.raw_image_msg(bytes(640 * 480 * 2), 640, 480, "yuv420p", 640 * 2,
                                            stamp),
        "unsupported image encoding 'yuv420p'"),
    "data shorter than step*height": (
        lambda stamp: harness.raw_image_msg(bytes(640 * 3 * 200), 640, 480, "bgr8", 640 * 3,
                                            stamp),
        "fewer than step * height"),
    "step smaller than a row": (
        lambda stamp: harness.raw_image_msg(bytes(640 * 480), 640, 480, "bgr8", 640, stamp),
        "step 640 is smaller than width * bytes per pixel"),
    "zero-size image": (
        lambda stamp: harness.raw_image_msg(b"", 0, 0, "bgr8", 0, stamp),
        "image is empty: 0x0 pixels"),
    "NaN in a float image": (
        lambda stamp: harness.image_to_msg(np.full((48, 64), np.nan, np.float32), "32FC1",
                                           stamp),
        "NaN or infinite pixel values"),
    "corrupt JPEG": (
        lambda stamp: harness.compressed_msg(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 20,
                                             stamp),
        "cannot decode compressed image"),
    "empty CompressedImage": (
        lambda stamp: harness.compressed_msg(b"", stamp),
        "compressed image is empty"),
}


def test_one_image_transport_per_extractor(probe, orb, orb_jpeg):
    """image_transport: raw subscribes to image only, compressed to
    image/compressed only (a driver publishing both must not be processed twice
    nor made to JPEG-encode every frame for nothing)."""
    def extractor_subscriptions(namespace, topic):
        return sum(info.node_name == "extractor" and info.node_namespace == namespace
                   for info in probe.node.get_subscriptions_info_by_topic(topic))

    assert extractor_subscriptions("/orb", "/orb/image") == 1
    assert extractor_subscriptions("/orb", "/orb/image/compressed") == 0
    assert extractor_subscriptions("/orbjpeg", "/orbjpeg/image/compressed") == 1
    assert extractor_subscriptions("/orbjpeg", "/orbjpeg/image") == 0
    assert orb_jpeg.process.wait_for_log("/orbjpeg/image/compressed (compressed)", 1.0)


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_logged_counted_and_the_next_frame_is_served(orb, orb_jpeg, diagnostics,
                                                                  case):
    make, problem = BAD_INPUTS[case]
    bad = make(next_stamp())
    node = orb_jpeg if isinstance(bad, CompressedImage) else orb
    errors_before = int(_fresh_diag(diagnostics, node.name)["errors"])
    node.publish_of(bad).publish(bad)

    values = _diag(diagnostics, node.name,
                   lambda v: int(v["errors"]) > errors_before and problem in v["last_error"])
    assert int(values["errors"]) == errors_before + 1
    assert node.process.wait_for_log(problem, 5.0), node.process.log_tail()
    assert node.process.alive()
    keypoints = node.send(node.good_frame(next_stamp()))
    assert keypoints is not None and len(keypoints.x) > 100


def test_debug_image_is_published_only_while_subscribed(orb, probe, diagnostics):
    image = harness.natural_image()
    assert orb.send(harness.image_to_msg(image, "bgr8", next_stamp())) is not None
    assert _fresh_diag(diagnostics, orb.name).get("debug_images_published", "0") == "0"

    debug = probe.record(Image, f"{orb.namespace}/keypoints/debug_image", OUTPUT_QOS)
    found = None
    for _ in range(20):  # until the extractor has seen the new subscription
        msg = harness.image_to_msg(image, "bgr8", next_stamp(), "debug_camera")
        orb.send(msg)
        found = debug.wait_for(lambda m: harness.same_stamp(m.header.stamp, msg.header.stamp),
                               0.5)
        if found is not None:
            break
    assert found is not None, "no debug image while subscribed"
    assert (found.width, found.height, found.encoding) == (640, 480, "bgr8")
    assert found.header.frame_id == "debug_camera"
    drawn = np.frombuffer(found.data, np.uint8).reshape(480, 640, 3)
    assert np.count_nonzero(np.any(drawn != image, axis=2)) > 1000  # keypoints are drawn

    debug.stop()

    def published_after_a_frame():
        assert orb.send(harness.image_to_msg(image, "bgr8", next_stamp())) is not None
        return _fresh_diag(diagnostics, orb.name)["debug_images_published"]

    # Once the extractor has seen the subscription go (discovery), drawing stops.
    counts = [published_after_a_frame()]
    while len(counts) < 10 and (len(counts) < 2 or counts[-1] != counts[-2]):
        counts.append(published_after_a_frame())
    for _ in range(3):
        assert published_after_a_frame() == counts[-1]


def test_threshold_parameters_change_at_run_time_and_bad_values_are_refused(orb, probe):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    client = probe.node.create_client(SetParameters, f"{orb.name}/set_parameters")
    assert client.wait_for_service(timeout_sec=10.0)

    def set_int(name, value):
        request = SetParameters.Request(parameters=[Parameter(
            name=name, value=ParameterValue(type=ParameterType.PARAMETER_INTEGER,
                                            integer_value=value))])
        future = client.call_async(request)
        assert probe.wait_for_future(future, 10.0)
        return future.result().results[0]

    image = harness.natural_image()
    try:
        assert set_int("max_keypoints", 50).successful
        keypoints = orb.send(harness.image_to_msg(image, "bgr8", next_stamp()))
        assert 0 < len(keypoints.x) <= 50
        refused = set_int("max_keypoints", -5)
        assert not refused.successful and "max_keypoints must be >= 0" in refused.reason
    finally:
        assert set_int("max_keypoints", 500).successful
    assert len(orb.send(harness.image_to_msg(image, "bgr8", next_stamp())).x) > 100


def test_incompatible_qos_is_warned_about(orb, probe):
    best_effort = probe.publisher(Image, f"{orb.namespace}/image", qos_profile("sensor_data"))
    try:
        assert orb.process.wait_for_log("incompatible QoS on image", 10.0), orb.process.log_tail()
    finally:
        probe.node.destroy_publisher(best_effort)


# ---- matcher ---------------------------------------------------------------------
def test_extractor_and_matcher_match_consecutive_video_frames(orb):
    matches = orb.probe.record(Matches, f"{orb.namespace}/matches", OUTPUT_QOS)
    tracked = orb.probe.record(Keypoints, f"{orb.namespace}/keypoints/tracked", OUTPUT_QOS)
    capture = cv2.VideoCapture(str(harness.opencv_sample_data_dir() / "vtest.avi"))
    frames = [cv2.resize(capture.read()[1], (640, 480), interpolation=cv2.INTER_AREA)
              for _ in range(2)]
    first = orb.send(harness.image_to_msg(frames[0], "bgr8", next_stamp()))
    # the matcher must have taken the first frame before the second arrives: on
    # a loaded machine it may still be busy with an earlier test's frames, and
    # its newest-frame policy would then skip the first (counted, not a fault)
    assert tracked.wait_for(lambda m: harness.same_stamp(m.header.stamp, first.header.stamp),
                            10.0) is not None, "the matcher never tracked the first frame"
    second = orb.send(harness.image_to_msg(frames[1], "bgr8", next_stamp()))
    found = matches.wait_for(lambda m: harness.same_stamp(m.header.stamp, second.header.stamp),
                             10.0)
    assert found is not None, "no Matches for two consecutive frames"
    assert harness.same_stamp(found.reference_stamp, first.header.stamp)
    assert (found.reference_sequence, found.current_sequence) == (first.sequence,
                                                                  second.sequence)
    assert found.session_id == first.session_id
    assert len(found.distances) > 100  # a static street camera: most keypoints match
    reference_xy, current_xy = _xy(first), _xy(second)
    moved = np.linalg.norm(reference_xy[np.asarray(found.reference_indices)]
                           - current_xy[np.asarray(found.current_indices)], axis=1)
    assert np.median(moved) < 2.0  # the camera does not move


def test_matches_debug_image_draws_tracks_on_the_camera_frame_while_subscribed(orb, probe):
    def image_subscribers():
        return probe.node.count_subscribers(f"{orb.namespace}/image")

    assert image_subscribers() == 1  # the extractor only: nobody watches the debug image
    debug = probe.record(Image, f"{orb.namespace}/matches/debug_image", OUTPUT_QOS)
    capture = cv2.VideoCapture(str(harness.opencv_sample_data_dir() / "vtest.avi"))
    frame = cv2.resize(capture.read()[1], (640, 480), interpolation=cv2.INTER_AREA)
    found, changed = None, None
    # Until the matcher follows `image` for the background: it subscribes on a
    # 0.5 s timer once the debug image has a subscriber, then discovery has to
    # link it to the camera publisher; bounded by time, not by a frame count.
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        msg = harness.image_to_msg(frame, "bgr8", next_stamp())
        orb.send(msg)
        found = debug.wait_for(lambda m: harness.same_stamp(m.header.stamp, msg.header.stamp),
                               0.5)
        if found is not None:
            drawn = np.frombuffer(found.data, np.uint8).reshape(480, 640, 3)
            changed = np.any(drawn != frame, axis=2).mean()
            if changed < 0.5:  # drawn on the camera frame, not on the blank canvas
                break
    assert found is not None, "no matches/debug_image while subscribed"
    assert 0.005 < changed < 0.5  # the camera frame, with tracks drawn on it
    assert image_subscribers() == 2  # the matcher follows `image` for the background
    debug.stop()
    assert probe.wait_until(lambda: image_subscribers() == 1, 5.0)


def _keypoints(features, session, sequence, model="test"):
    header = Header(frame_id="camera", stamp=next_stamp())
    return features_to_keypoints_msg(features, header, model, session, sequence)


def _unit_features(n=200, seed=0):
    rng = np.random.default_rng(seed)
    descriptors = rng.standard_normal((n, 64)).astype(np.float32)
    descriptors /= np.linalg.norm(descriptors, axis=1, keepdims=True)
    return Features(rng.uniform(10, 600, (n, 2)), rng.uniform(0, 1, n), descriptors,
                    (640, 480), "float32", 64)


def test_keypoints_to_matches_and_resets_between_sessions_and_descriptor_types(
        processes, probe, diagnostics):
    process = harness.wait_ready(processes["matcher"])
    publisher = probe.publisher(Keypoints, "/match/keypoints", OUTPUT_QOS)
    matches = probe.record(Matches, "/match/matches", OUTPUT_QOS)
    assert probe.wait_for_subscribers(publisher)
    assert probe.wait_for_recordings(matches)
    # the matcher's ends of both links
    assert harness.wait_for_links(diagnostics, {"/match/matcher": {
        "keypoints_publishers": 1, "matches_subscribers": 1}}), process.log_tail()

    def send(msg, expect_matches=True):
        publisher.publish(msg)
        if expect_matches:
            found = matches.wait_for(
                lambda m: harness.same_stamp(m.header.stamp, msg.header.stamp), 10.0)
            assert found is not None, process.log_tail()
            return found
        return None

    features = _unit_features()
    first = _keypoints(features, session=11, sequence=0)
    send(first, expect_matches=False)
    assert process.wait_for_log("first Keypoints frame (session 11", 10.0)
    permutation = np.random.default_rng(1).permutation(len(features))
    moved = features.subset(permutation)
    moved.keypoints += [3.0, -2.0]
    current = _keypoints(moved, session=11, sequence=1)
    found = send(current)
    assert harness.same_stamp(found.reference_stamp, first.header.stamp)
    assert (found.session_id, found.reference_sequence, found.current_sequence) == (11, 0, 1)
    assert (found.reference_num_keypoints, found.current_num_keypoints) == (200, 200)
    assert found.verification == Matches.VERIFICATION_NONE and len(found.inliers) == 0
    reference_indices = np.asarray(found.reference_indices)
    current_indices = np.asarray(found.current_indices)
    assert len(reference_indices) == 200
    np.testing.assert_array_equal(permutation[current_indices], reference_indices)
    np.testing.assert_allclose(np.asarray(found.distances), 0.0, atol=1e-3)

    # The extractor restarted: a new session is never matched against the old one.
    resets = int(_fresh_diag(diagnostics, "/match/matcher")["resets"])
    restarted = _keypoints(features, session=12, sequence=0)
    send(restarted, expect_matches=False)
    _diag(diagnostics, "/match/matcher", lambda v: int(v["resets"]) == resets + 1)
    assert matches.wait_for(lambda m: m.session_id == 12, 0.5) is None
    found = send(_keypoints(features, session=12, sequence=1))
    assert found.session_id == 12 and len(found.distances) == 200

    # The model changed to binary descriptors: reset with a warning, then Hamming matching.
    rng = np.random.default_rng(2)
    binary = Features(features.keypoints, features.scores,
                      rng.integers(0, 256, (200, 32), dtype=np.uint8), (640, 480), "binary", 256)
    send(_keypoints(binary, session=12, sequence=2, model="orb"), expect_matches=False)
    _diag(diagnostics, "/match/matcher", lambda v: int(v["resets"]) == resets + 2)
    assert process.wait_for_log("descriptors changed from float32/64 to binary/256", 5.0)
    found = send(_keypoints(binary, session=12, sequence=3, model="orb"))
    assert len(found.distances) == 200 and not np.asarray(found.distances).any()

    # A malformed message is counted and the next one is matched.
    errors = int(_fresh_diag(diagnostics, "/match/matcher")["errors"])
    broken = _keypoints(binary, session=12, sequence=4, model="orb")
    broken.binary_descriptors = broken.binary_descriptors[:-5]
    send(broken, expect_matches=False)
    values = _diag(diagnostics, "/match/matcher", lambda v: int(v["errors"]) == errors + 1)
    assert "expected 6400" in values["last_error"]
    assert process.wait_for_log("dropped Keypoints (session 12, sequence 4)", 5.0)
    found = send(_keypoints(binary, session=12, sequence=5, model="orb"))
    assert found.reference_sequence == 3


# ---- player and start-up errors ---------------------------------------------------
def test_player_publishes_a_real_video_as_a_camera_and_exits(probe):
    images = probe.record(Image, "/player/image", RELIABLE)
    infos = probe.record(CameraInfo, "/player/camera_info", RELIABLE)
    compressed = probe.record(CompressedImage, "/player/image/compressed", RELIABLE)
    player = harness.start_node("player", "/player", {
        "max_frames": 5, "rate_hz": 20.0, "qos": "reliable", "publish_compressed": True,
        "wait_for_subscribers": 1})
    with harness.stopped(player):
        assert player.wait(30.0) == 0, player.log_tail()
    assert "finished: published 5 frames" in player.log()
    assert probe.wait_until(lambda: len(images) == 5 and len(infos) == 5
                            and len(compressed) == 5, 5.0)
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in images.snapshot()]
    assert stamps == sorted(stamps) and len(set(stamps)) == 5
    first = images.snapshot()[0]
    assert (first.width, first.height, first.encoding, first.header.frame_id) == (
        640, 480, "bgr8", "camera")
    assert np.frombuffer(first.data, np.uint8).std() > 20  # a real picture, not blank
    assert [harness.same_stamp(a.header.stamp, b.header.stamp)
            for a, b in zip(images.snapshot(), infos.snapshot())] == [True] * 5


def test_a_player_waiting_for_a_subscriber_on_image_only_starts_after_the_settle_time(probe):
    # A viewer listens on image but not on camera_info: the player must not wait for
    # a camera_info subscriber forever, only for DISCOVERY_SETTLE_S.
    images = probe.record(Image, "/viewer_only/image", RELIABLE)
    player = harness.start_node("player", "/viewer_only", {
        "max_frames": 3, "rate_hz": 20.0, "qos": "reliable", "wait_for_subscribers": 1})
    with harness.stopped(player):
        assert player.wait(30.0) == 0, player.log_tail()
    assert "finished: published 3 frames" in player.log()
    assert probe.wait_until(lambda: len(images) == 3, 5.0)


def test_a_waiting_player_holds_its_first_frame_for_the_settle_time_after_the_match(probe):
    # The subscriber's end of discovery may finish after the player's: the first frame
    # waits subscriber_settle_s after the player counted its subscriptions.
    images = probe.record(Image, "/settle/image", RELIABLE)
    infos = probe.record(CameraInfo, "/settle/camera_info", RELIABLE)
    player = harness.start_node("player", "/settle", {
        "max_frames": 2, "rate_hz": 20.0, "qos": "reliable", "wait_for_subscribers": 1,
        "subscriber_settle_s": 2.5})
    with harness.stopped(player):
        assert probe.wait_for_publishers("/settle/image", timeout=30.0)
        seen_ns = time.time_ns()
        assert player.wait(30.0) == 0, player.log_tail()
    assert probe.wait_until(lambda: len(images) == 2 and len(infos) == 2, 5.0)
    assert (images.arrival_ns[0] - seen_ns) / 1e9 > 2.0
    held = re.search(r"first frame published \(1 subscription\(s\) on image, ([0-9.]+) s after "
                     r"they matched\)", player.log())
    assert held and float(held.group(1)) >= 2.5, player.log()


@pytest.mark.parametrize("executable, parameters, problem", [
    ("player", {"source": "/nonexistent/video.avi"},
     "player source not found: /nonexistent/video.avi"),
    ("extractor", {"model": "superglue"}, "model must be one of"),
    ("matcher", {"ratio": 1.5}, "ratio must be in [0, 1] (0 = off); got 1.5"),
])
def test_a_node_that_cannot_start_says_why_and_exits_1(executable, parameters, problem):
    process = harness.start_node(executable, "/broken", parameters)
    with harness.stopped(process):
        assert process.wait(30.0) == 1, process.log_tail()
    assert problem in process.log(), process.log()
