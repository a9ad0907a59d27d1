"""Run the keypoint pipeline offline over a ROS 2 bag, and write keypoints and matches to a bag.

Everything goes through `rosbags` (pure Python), so this needs no ROS
install: `AnyReader` reads rosbag2 bags in sqlite3 or MCAP storage (and ROS 1
bags), `Writer` writes rosbag2 bags in either storage.

Message types: the typestore is rosbags' Kilted store plus our
`edgepoint_msgs/Keypoints` and `Matches`, parsed from the .msg files with
`get_types_from_msg`. Their RIHS01 type hashes then equal the ones rosidl
generates, so `ros2 bag play` republishes the output bag as real
edgepoint_msgs. The .msg files are found next to the package source
(`<repo>/edgepoint_msgs/msg`) or in an installed `share/edgepoint_msgs/msg`
on AMENT_PREFIX_PATH.

`process_bag` reads `sensor_msgs/Image` or `CompressedImage` from one topic
(decoded by `conversions`, the same code the extractor node uses),
extracts features with any model (`models.create_model`), tracks them
(`tracking.Tracker`) and writes, per image:

* Keypoints on `keypoints_topic`, header copied from the image (same stamp
  and frame_id), track ids/ages, and normalised coordinates when a CameraInfo
  topic is given;
* Matches on `matches_topic` against the tracker's reference frame, with the
  RANSAC inlier flags; none for the first frame (there is no reference).

Both are recorded at the input image's log time, so the output bag lines up
with the input bag. session_id is drawn at random per run, as the extractor
node does, unless given.
"""
from __future__ import annotations

import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .camera_models import CameraModel, calibration_status
from .config import ExtractorConfig
from .tracking import Tracker, TrackerConfig, TrackResult

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
KEYPOINTS_TYPE = "edgepoint_msgs/msg/Keypoints"
MATCHES_TYPE = "edgepoint_msgs/msg/Matches"
STORAGE_FORMATS = ("sqlite3", "mcap")
_OUR_MESSAGES = ("Keypoints", "Matches")


def find_msg_dir() -> Path:
    """The directory holding edgepoint_msgs' Keypoints.msg and Matches.msg."""
    candidates = [Path(__file__).resolve().parents[2] / "edgepoint_msgs" / "msg"]
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        candidates.append(Path(prefix) / "share" / "edgepoint_msgs" / "msg")
    for candidate in candidates:
        if all((candidate / f"{name}.msg").is_file() for name in _OUR_MESSAGES):
            return candidate
    raise FileNotFoundError("edgepoint_msgs .msg files not found; looked in "
                            + ", ".join(str(c) for c in candidates))


def edgepoint_typestore(msg_dir: Path | str | None = None):
    """rosbags typestore for ROS 2 Kilted plus edgepoint_msgs/Keypoints and Matches."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    msg_dir = Path(msg_dir) if msg_dir is not None else find_msg_dir()
    typestore = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for name in _OUR_MESSAGES:
        path = msg_dir / f"{name}.msg"
        if not path.is_file():
            raise FileNotFoundError(f"message definition not found: {path}")
        types.update(get_types_from_msg(path.read_text(), f"edgepoint_msgs/msg/{name}"))
    typestore.register(types)
    return typestore


# -- reading -------------------------------------------------------------------

@dataclass
class BagImage:
    """One decoded image of a bag."""

    index: int
    stamp_ns: int          # header stamp (capture time)
    log_time_ns: int       # when the bag recorded it
    frame_id: str
    image: np.ndarray
    camera_info: object | None = None   # latest CameraInfo message before it, if read


def bag_image_topics(path: Path | str) -> dict[str, str]:
    """{topic: message type} of the image topics in a bag."""
    from rosbags.highlevel import AnyReader

    with AnyReader([Path(path)], default_typestore=edgepoint_typestore()) as reader:
        return {c.topic: c.msgtype for c in reader.connections if c.msgtype in IMAGE_TYPES}


def iter_bag_images(path: Path | str, topic: str | None = None, *,
                    camera_info_topic: str | None = None, max_frames: int = 0,
                    typestore=None) -> Iterator[BagImage]:
    """Decode the images of one topic in log-time order.

    topic None picks the bag's only Image/CompressedImage topic (an error lists
    them when there are several). With camera_info_topic, each image carries
    the latest CameraInfo recorded before it.
    """
    from rosbags.highlevel import AnyReader

    from .conversions import compressed_msg_to_array, image_msg_to_array, stamp_to_ns

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"bag not found: {path}")
    typestore = typestore or edgepoint_typestore()
    with AnyReader([path], default_typestore=typestore) as reader:
        image_connections = _image_connections(reader, topic, path)
        info_connections = []
        if camera_info_topic:
            info_connections = [c for c in reader.connections if c.topic == camera_info_topic]
            if not info_connections:
                raise ValueError(f"camera info topic {camera_info_topic!r} is not in {path}")
            if any(c.msgtype != CAMERA_INFO_TYPE for c in info_connections):
                raise ValueError(f"topic {camera_info_topic!r} is not sensor_msgs/CameraInfo")
        camera_info = None
        index = 0
        for connection, log_time, raw in reader.messages(image_connections + info_connections):
            msg = reader.deserialize(raw, connection.msgtype)
            if connection.msgtype == CAMERA_INFO_TYPE:
                camera_info = msg
                continue
            if connection.msgtype.endswith("CompressedImage"):
                image = compressed_msg_to_array(msg)
            else:
                image = image_msg_to_array(msg)
            yield BagImage(index, stamp_to_ns(msg.header.stamp), int(log_time),
                           str(msg.header.frame_id), image, camera_info)
            index += 1
            if max_frames and index >= max_frames:
                return


def _image_connections(reader, topic: str | None, path: Path):
    images = [c for c in reader.connections if c.msgtype in IMAGE_TYPES]
    if topic is None:
        topics = sorted({c.topic for c in images})
        if len(topics) != 1:
            found = ", ".join(topics) if topics else "none"
            raise ValueError(f"{path} has {len(topics)} image topics ({found}); "
                             "name one with the image topic option")
        topic = topics[0]
    chosen = [c for c in reader.connections if c.topic == topic]
    if not chosen:
        raise ValueError(f"topic {topic!r} is not in {path}; image topics: "
                         + (", ".join(sorted({c.topic for c in images})) or "none"))
    bad = [c.msgtype for c in chosen if c.msgtype not in IMAGE_TYPES]
    if bad:
        raise ValueError(f"topic {topic!r} carries {bad[0]}, not sensor_msgs/Image or "
                         "CompressedImage")
    return chosen


# -- building messages ---------------------------------------------------------

def _header(typestore, stamp_ns: int, frame_id: str):
    Header = typestore.types["std_msgs/msg/Header"]
    return Header(stamp=_time(typestore, stamp_ns), frame_id=frame_id)


def _time(typestore, stamp_ns: int):
    Time = typestore.types["builtin_interfaces/msg/Time"]
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


def keypoints_message(typestore, features, result: TrackResult | None, *, stamp_ns: int,
                      frame_id: str, model: str, session_id: int, sequence: int):
    """edgepoint_msgs/Keypoints (rosbags class) for one frame."""
    Keypoints = typestore.types[KEYPOINTS_TYPE]
    binary = features.descriptor_type == "binary"
    empty_f = np.zeros(0, np.float32)
    normalized = None if result is None else result.normalized
    return Keypoints(
        header=_header(typestore, stamp_ns, frame_id),
        image_width=int(features.image_size[0]), image_height=int(features.image_size[1]),
        model=model, session_id=int(session_id), sequence=int(sequence),
        x=np.ascontiguousarray(features.keypoints[:, 0]),
        y=np.ascontiguousarray(features.keypoints[:, 1]),
        scores=features.scores,
        descriptor_type=Keypoints.DESCRIPTOR_BINARY if binary else Keypoints.DESCRIPTOR_FLOAT32,
        descriptor_dim=int(features.descriptor_dim),
        descriptors=empty_f if binary else features.descriptors.reshape(-1),
        binary_descriptors=features.descriptors.reshape(-1) if binary else np.zeros(0, np.uint8),
        track_ids=np.zeros(0, np.int64) if result is None else result.track_ids,
        track_ages=np.zeros(0, np.uint32) if result is None else result.track_ages,
        x_normalized=empty_f if normalized is None else np.ascontiguousarray(normalized[:, 0]),
        y_normalized=empty_f if normalized is None else np.ascontiguousarray(normalized[:, 1]))


def matches_message(typestore, result: TrackResult, *, stamp_ns: int, frame_id: str,
                    session_id: int, current_sequence: int, current_num_keypoints: int):
    """edgepoint_msgs/Matches (rosbags class) of a tracked frame against its
    reference; `result.reference_tag` must be the reference's Keypoints sequence."""
    values = result.matches_fields(session_id=session_id,
                                   reference_sequence=int(result.reference_tag),
                                   current_sequence=current_sequence,
                                   current_num_keypoints=current_num_keypoints)
    reference_stamp = _time(typestore, values.pop("reference_stamp_ns"))
    return typestore.types[MATCHES_TYPE](header=_header(typestore, stamp_ns, frame_id),
                                         reference_stamp=reference_stamp, **values)


# -- the offline pipeline ------------------------------------------------------

@dataclass
class ProcessBagReport:
    input: str
    output: str
    image_topic: str
    frames: int = 0
    keypoints: int = 0
    matches: int = 0
    inliers: int = 0
    tracked: int = 0
    calibrated_frames: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    frames_total: int = 0  # images of the topic to process (max_frames applied)
    interrupted: str = ""  # why processing stopped early (e.g. "SIGINT"); "" when complete

    def summary(self) -> str:
        per = max(self.frames, 1)
        if self.interrupted and not Path(self.output).exists():
            return (f"interrupted ({self.interrupted}) before the first frame: no output bag "
                    f"was written ({self.output})")
        stopped = (f"interrupted ({self.interrupted}) after {self.frames} of "
                   f"{self.frames_total} frames; the output bag is complete and readable "
                   f"with those: " if self.interrupted else "")
        return (f"{stopped}{self.frames} frames from {self.image_topic} -> {self.output}: "
                f"{self.keypoints / per:.0f} keypoints/frame, {self.matches / per:.0f} matches/frame, "
                f"{self.inliers / per:.0f} inliers/frame, {self.tracked / per:.0f} tracked/frame, "
                f"{self.calibrated_frames} frames normalised, "
                f"{1000 * self.seconds / per:.1f} ms/frame")


def process_bag(input_path: Path | str, output_path: Path | str, *,
                extractor: ExtractorConfig, tracker: TrackerConfig | None = None,
                image_topic: str | None = None, camera_info_topic: str | None = None,
                keypoints_topic: str = "/keypoints", matches_topic: str = "/matches",
                storage: str = "sqlite3", max_frames: int = 0, session_id: int | None = None,
                calibration_max_age_s: float = 1.0, progress: bool = True,
                model=None, stop: Callable[[], str | None] | None = None) -> ProcessBagReport:
    """Extract, track and write Keypoints + Matches of every image of a bag.

    output_path must not exist (rosbag2 writes a directory). `model` overrides
    the one `extractor` would build (e.g. to reuse a loaded model). `stop`,
    asked before each frame, ends the run early when it returns a reason (e.g.
    "SIGINT"): the frames processed so far are in the output bag, which is
    closed as usual (readable), and the report's `interrupted` says why; when
    it returns one before the first frame, no output bag is written.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    from .models import create_model

    input_path, output_path = Path(input_path), Path(output_path)
    if storage not in STORAGE_FORMATS:
        raise ValueError(f"storage must be one of {', '.join(STORAGE_FORMATS)}; got {storage!r}")
    if output_path.exists():
        raise FileExistsError(f"output bag already exists: {output_path}")
    if not input_path.exists():
        raise FileNotFoundError(f"bag not found: {input_path}")
    typestore = edgepoint_typestore()
    with _open_reader(input_path, typestore) as reader:
        topic = _image_connections(reader, image_topic, input_path)[0].topic
        total = sum(c.msgcount for c in reader.connections if c.topic == topic)
        if camera_info_topic and not any(c.topic == camera_info_topic
                                         for c in reader.connections):
            raise ValueError(f"camera info topic {camera_info_topic!r} is not in {input_path}")
    if max_frames:
        total = min(total, max_frames)
    model = model or create_model(extractor)
    track = Tracker(tracker or TrackerConfig())
    session_id = secrets.randbits(32) if session_id is None else int(session_id)
    report = ProcessBagReport(str(input_path), str(output_path), topic, frames_total=total)
    stop = stop or (lambda: None)
    report.interrupted = stop() or ""
    if report.interrupted:  # before anything was written
        return report
    warned = set()
    bar = _progress(total, progress)
    started = time.perf_counter()
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(output_path, version=9, storage_plugin=plugin) as writer:
        kp_conn = writer.add_connection(keypoints_topic, KEYPOINTS_TYPE, typestore=typestore)
        match_conn = writer.add_connection(matches_topic, MATCHES_TYPE, typestore=typestore)
        frames = iter_bag_images(input_path, topic, camera_info_topic=camera_info_topic,
                                 max_frames=max_frames, typestore=typestore)
        for frame in frames:
            report.interrupted = stop() or ""
            if report.interrupted:
                frames.close()  # closes the input bag
                break
            features = model.extract(frame.image)
            camera = _camera_for(frame, features, camera_info_topic, calibration_max_age_s,
                                 report, warned)
            result = track.process(features, frame.stamp_ns, camera=camera, tag=frame.index)
            kp_msg = keypoints_message(typestore, features, result, stamp_ns=frame.stamp_ns,
                                       frame_id=frame.frame_id, model=model.name,
                                       session_id=session_id, sequence=frame.index)
            writer.write(kp_conn, frame.log_time_ns,
                         typestore.serialize_cdr(kp_msg, KEYPOINTS_TYPE))
            if result.reference_frame_index is not None:
                m_msg = matches_message(typestore, result, stamp_ns=frame.stamp_ns,
                                        frame_id=frame.frame_id, session_id=session_id,
                                        current_sequence=frame.index,
                                        current_num_keypoints=len(features))
                writer.write(match_conn, frame.log_time_ns,
                             typestore.serialize_cdr(m_msg, MATCHES_TYPE))
            report.frames += 1
            report.keypoints += len(features)
            report.matches += result.num_matches
            report.inliers += result.num_inliers
            report.tracked += result.num_tracked
            report.calibrated_frames += camera is not None
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    report.seconds = time.perf_counter() - started
    return report


def _open_reader(path: Path, typestore):
    from rosbags.highlevel import AnyReader
    return AnyReader([path], default_typestore=typestore)


def _camera_for(frame: BagImage, features, camera_info_topic, max_age_s, report, warned):
    if not camera_info_topic:
        return None
    camera = None
    if frame.camera_info is not None:
        try:
            camera = CameraModel.from_camera_info(frame.camera_info)
        except ValueError as error:
            _warn(report, warned, "unusable", f"unusable CameraInfo: {error}")
            return None
    status = calibration_status(camera, frame.stamp_ns, *features.image_size,
                                max_age_s=max_age_s)
    if not status.usable:
        _warn(report, warned, status.reason, status.message)
        return None
    return camera


def _warn(report: ProcessBagReport, warned: set, reason: str, message: str) -> None:
    """Record (and print) the first warning of each kind, not one per frame."""
    if reason not in warned:
        warned.add(reason)
        report.warnings.append(message)
        print(f"warning: {message}", file=sys.stderr)


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="frame", file=sys.stderr)


# -- writing image bags (a video or an image folder as a bag) ------------------

def write_image_bag(path: Path | str, images, stamps_ns, *, topic: str = "/camera/image_raw",
                    frame_id: str = "camera", compressed: bool = False,
                    storage: str = "sqlite3", camera: CameraModel | None = None,
                    camera_info_topic: str = "/camera/camera_info") -> int:
    """Write BGR/grey uint8 images as sensor_msgs/Image (bgr8/mono8) or
    CompressedImage (JPEG) at the given stamps (header stamp = log time); with
    `camera`, a CameraInfo with the same stamp precedes each image. Returns the
    number of images written."""
    import cv2
    from rosbags.rosbag2 import StoragePlugin, Writer

    if storage not in STORAGE_FORMATS:
        raise ValueError(f"storage must be one of {', '.join(STORAGE_FORMATS)}; got {storage!r}")
    typestore = edgepoint_typestore()
    types = typestore.types
    msgtype = IMAGE_TYPES[1] if compressed else IMAGE_TYPES[0]
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    count = 0
    with Writer(Path(path), version=9, storage_plugin=plugin) as writer:
        info_conn = None
        if camera is not None:
            info_conn = writer.add_connection(camera_info_topic, CAMERA_INFO_TYPE,
                                              typestore=typestore)
        image_conn = writer.add_connection(topic, msgtype, typestore=typestore)
        for image, stamp_ns in zip(images, stamps_ns):
            image = np.ascontiguousarray(image)
            if image.dtype != np.uint8 or image.ndim not in (2, 3):
                raise ValueError(f"images must be HxW or HxWx3 uint8; got {image.shape} "
                                 f"{image.dtype}")
            header = _header(typestore, stamp_ns, frame_id)
            if info_conn is not None:
                info = types[CAMERA_INFO_TYPE](
                    header=header, height=camera.height, width=camera.width,
                    distortion_model=camera.distortion_model, d=camera.d,
                    k=camera.k.reshape(-1), r=camera.r.reshape(-1), p=camera.p.reshape(-1),
                    binning_x=0, binning_y=0,
                    roi=types["sensor_msgs/msg/RegionOfInterest"](
                        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
                writer.write(info_conn, int(stamp_ns),
                             typestore.serialize_cdr(info, CAMERA_INFO_TYPE))
            if compressed:
                ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
                if not ok:
                    raise ValueError(f"JPEG encoding failed for a {image.shape} image")
                msg = types[msgtype](header=header, format="jpeg",
                                     data=encoded.reshape(-1).astype(np.uint8))
            else:
                msg = types[msgtype](
                    header=header, height=image.shape[0], width=image.shape[1],
                    encoding="mono8" if image.ndim == 2 else "bgr8", is_bigendian=0,
                    step=image.strides[0], data=image.reshape(-1))
            writer.write(image_conn, int(stamp_ns), typestore.serialize_cdr(msg, msgtype))
            count += 1
    return count


# -- reading our own output back ----------------------------------------------

def read_feature_bag(path: Path | str, topic: str) -> list[tuple[int, object]]:
    """[(log_time_ns, message)] of one Keypoints or Matches topic of a bag."""
    typestore = edgepoint_typestore()
    with _open_reader(Path(path), typestore) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        if not connections:
            raise ValueError(f"topic {topic!r} is not in {path}")
        return [(int(t), reader.deserialize(raw, c.msgtype))
                for c, t, raw in reader.messages(connections)]
