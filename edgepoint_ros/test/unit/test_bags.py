"""Offline pipeline over real rosbag2 bags (sqlite3 and MCAP) written from opencv-doc video frames."""
import cv2
import numpy as np
import pytest

from edgepoint_ros.bags import (bag_image_topics, edgepoint_typestore, iter_bag_images,
                                process_bag, read_feature_bag, write_image_bag)
from edgepoint_ros.camera_models import CameraModel
from edgepoint_ros.config import ExtractorConfig
from edgepoint_ros.paths import opencv_sample_data_dir
from edgepoint_ros.tracking import TrackerConfig

T0 = 1_700_000_000 * 1_000_000_000
PERIOD = 66_666_667  # tree.avi runs at 15 fps
CAMERA = CameraModel.from_fields(320, 240, "plumb_bob", [-0.05, 0.01, 0, 0, 0],
                                 [300.0, 0, 160.0, 0, 300.0, 120.0, 0, 0, 1])


def _video_frames(count=5):
    video = cv2.VideoCapture(str(opencv_sample_data_dir() / "tree.avi"))
    frames = []
    while len(frames) < count:
        ok, frame = video.read()
        assert ok, "tree.avi from opencv-doc is unreadable"
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def frames():
    return _video_frames()


@pytest.mark.parametrize("storage,compressed", [("sqlite3", False), ("mcap", True)])
def test_process_bag_writes_keypoints_and_matches(tmp_path, frames, storage, compressed):
    stamps = [T0 + i * PERIOD for i in range(len(frames))]
    source = tmp_path / "in"
    write_image_bag(source, frames, stamps, compressed=compressed, storage=storage,
                    camera=CAMERA, frame_id="tree_cam")
    assert bag_image_topics(source) == {
        "/camera/image_raw": "sensor_msgs/msg/CompressedImage" if compressed
        else "sensor_msgs/msg/Image"}
    decoded = list(iter_bag_images(source))
    assert len(decoded) == 5 and decoded[0].image.shape == (240, 320, 3)
    if not compressed:
        np.testing.assert_array_equal(decoded[2].image, frames[2])

    out = tmp_path / "out"
    report = process_bag(source, out, extractor=ExtractorConfig(model="orb", max_keypoints=500),
                         tracker=TrackerConfig(ransac_threshold_px=2.0),
                         camera_info_topic="/camera/camera_info", storage=storage,
                         session_id=42, progress=False)
    assert report.frames == 5 and report.calibrated_frames == 5 and not report.warnings

    keypoints = read_feature_bag(out, "/keypoints")
    matches = read_feature_bag(out, "/matches")
    assert len(keypoints) == 5 and len(matches) == 4     # no reference for the first frame
    assert [t for t, _ in keypoints] == stamps            # recorded at the images' log times
    for i, (_, msg) in enumerate(keypoints):
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        assert stamp == stamps[i] and msg.header.frame_id == "tree_cam"
        n = len(msg.x)
        assert 100 < n <= 500 and msg.model == "orb" and msg.sequence == i
        assert msg.session_id == 42 and (msg.image_width, msg.image_height) == (320, 240)
        assert msg.descriptor_type == 1 and msg.descriptor_dim == 256
        assert len(msg.binary_descriptors) == 32 * n and len(msg.descriptors) == 0
        assert len(msg.track_ids) == len(msg.track_ages) == len(msg.x_normalized) == n
        np.testing.assert_allclose(
            np.column_stack([msg.x_normalized, msg.y_normalized]),
            CAMERA.normalize(np.column_stack([msg.x, msg.y])), atol=1e-6)
    # ids persist: keypoints of frame i with age > 0 carry ids seen in frame i-1
    for (_, prev), (_, cur) in zip(keypoints, keypoints[1:]):
        continued = cur.track_ids[cur.track_ages > 0]
        assert len(continued) > 50 and set(continued) <= set(prev.track_ids)
    for k, (_, m) in enumerate(matches, start=1):
        assert m.current_sequence == k and m.reference_sequence == k - 1
        assert m.verification == 1 and m.session_id == 42
        assert m.reference_stamp.sec * 1_000_000_000 + m.reference_stamp.nanosec == stamps[k - 1]
        assert len(m.reference_indices) == len(m.current_indices) == len(m.inliers)
        assert m.inliers.sum() > 0.5 * len(m.inliers)
        assert m.current_indices.max() < m.current_num_keypoints == len(keypoints[k][1].x)
        # each verified match continued a track: same id in both frames
        ref_ids = keypoints[k - 1][1].track_ids[m.reference_indices[m.inliers]]
        cur_ids = keypoints[k][1].track_ids[m.current_indices[m.inliers]]
        np.testing.assert_array_equal(ref_ids, cur_ids)


def test_our_types_hash_like_rosidl():
    """rosbags' RIHS01 hashes of our types equal the colcon build's, so `ros2 bag
    play` publishes the output bag as real edgepoint_msgs."""
    import json

    from edgepoint_ros.bags import find_msg_dir
    typestore = edgepoint_typestore()
    share = find_msg_dir().parents[1] / "install/edgepoint_msgs/share/edgepoint_msgs/msg"
    for name in ("Keypoints", "Matches"):
        generated = json.loads((share / f"{name}.json").read_text())
        expected = generated["type_hashes"][0]["hash_string"]
        assert typestore.hash_rihs01(f"edgepoint_msgs/msg/{name}") == expected


def test_clear_errors(tmp_path, frames):
    source = tmp_path / "plain"
    stamps = [T0, T0 + PERIOD]
    write_image_bag(source, frames[:2], stamps)
    with pytest.raises(ValueError, match="topic '/nope' is not in .*image topics: /camera/image_raw"):
        list(iter_bag_images(source, "/nope"))
    with pytest.raises(FileNotFoundError, match="bag not found"):
        list(iter_bag_images(tmp_path / "missing"))
    with pytest.raises(FileExistsError, match="output bag already exists"):
        process_bag(source, source, extractor=ExtractorConfig(model="orb"), progress=False)
    with pytest.raises(ValueError, match="storage must be one of sqlite3, mcap"):
        process_bag(source, tmp_path / "o", extractor=ExtractorConfig(model="orb"),
                    storage="db3", progress=False)
    with pytest.raises(ValueError, match="camera info topic '/info' is not in"):
        process_bag(source, tmp_path / "o2", extractor=ExtractorConfig(model="orb"),
                    camera_info_topic="/info", progress=False)
    assert not (tmp_path / "o2").exists()   # checked before anything is written


def test_stale_or_missing_calibration_is_not_used(tmp_path, frames):
    """CameraInfo recorded only with the first image: the next images are more
    than calibration_max_age_s (0.05 s) newer, so they get no normalised coordinates and
    the report carries one warning (printed once, not per frame)."""
    from rosbags.rosbag2 import Writer
    typestore = edgepoint_typestore()
    types = typestore.types
    image_bag, info_bag = tmp_path / "images", tmp_path / "with_info"
    stamps = [T0 + i * PERIOD for i in range(3)]
    write_image_bag(image_bag, frames[:1], stamps[:1], camera=CAMERA)
    info_raw = read_raw(image_bag, "/camera/camera_info")[0]
    with Writer(info_bag, version=9) as writer:
        info_conn = writer.add_connection("/camera/camera_info", "sensor_msgs/msg/CameraInfo",
                                          typestore=typestore)
        image_conn = writer.add_connection("/camera/image_raw", "sensor_msgs/msg/Image",
                                           typestore=typestore)
        writer.write(info_conn, stamps[0], info_raw)
        for frame, stamp in zip(frames[:3], stamps):
            sec, nanosec = divmod(stamp, 1_000_000_000)
            header = types["std_msgs/msg/Header"](
                stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                frame_id="camera")
            image = types["sensor_msgs/msg/Image"](
                header=header, height=240, width=320, encoding="bgr8", is_bigendian=0,
                step=960, data=frame.reshape(-1))
            writer.write(image_conn, stamp,
                         typestore.serialize_cdr(image, "sensor_msgs/msg/Image"))
    report = process_bag(info_bag, tmp_path / "out", extractor=ExtractorConfig(model="orb"),
                         camera_info_topic="/camera/camera_info", calibration_max_age_s=0.05,
                         progress=False)
    assert report.frames == 3 and report.calibrated_frames == 1
    assert len(report.warnings) == 1 and "older than the image" in report.warnings[0]
    keypoints = read_feature_bag(tmp_path / "out", "/keypoints")
    assert [len(m.x_normalized) > 0 for _, m in keypoints] == [True, False, False]


def read_raw(path, topic):
    from rosbags.highlevel import AnyReader
    with AnyReader([path], default_typestore=edgepoint_typestore()) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        return [bytes(raw) for _, _, raw in reader.messages(connections)]


def test_process_bag_cli(tmp_path, frames, capsys):
    from edgepoint_ros.cli.process_bag import main
    source = tmp_path / "in"
    write_image_bag(source, frames[:3], [T0 + i * PERIOD for i in range(3)], storage="mcap")
    code = main([str(source), str(tmp_path / "out"), "--model", "orb", "--max-keypoints", "300",
                 "--verification", "homography", "--ransac-threshold-px", "3",
                 "--mutual", "false", "--ratio", "0.8", "--storage", "mcap", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert "3 frames from /camera/image_raw" in capsys.readouterr().out
    matches = read_feature_bag(tmp_path / "out", "/matches")
    assert len(matches) == 2 and all(m.verification == 2 for _, m in matches)
    keypoints = read_feature_bag(tmp_path / "out", "/keypoints")
    assert all(len(m.x) <= 300 for _, m in keypoints)
    assert main([str(source), str(tmp_path / "o2"), "--model", "orb", "--verification",
                 "affine", "--no-progress"]) == 1
    assert "verification must be one of none, fundamental, homography" in capsys.readouterr().err
