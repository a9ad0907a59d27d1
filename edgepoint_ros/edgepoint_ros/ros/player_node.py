"""Player node: a real image sequence published as a camera.

Topics
    out  image              sensor_msgs/Image (bgr8, rgb8 or mono8), stamped at publish time
    out  camera_info        sensor_msgs/CameraInfo, same header; K = 0 means
                            "uncalibrated" (ROS convention): the source has no calibration
    out  image/compressed   sensor_msgs/CompressedImage (JPEG), when publish_compressed
    out  /diagnostics       frames_published, publish_rate_hz, subscriptions,
                            incompatible_qos, source

Source (parameter `source`): a video file (anything OpenCV reads) or a
directory of images (sorted by file name). The default is Debian opencv-doc's
`vtest.avi`: 795 frames of a real static street camera (768x576, pedestrians
walking), textured enough that consecutive frames match well; at the default
640x480 it is exactly 4:3 like the source. Frames are decoded one at a time
(never all in memory) and resized to width x height.

With `wait_for_subscribers` = N it holds the first frame until N
subscriptions listen on `image` (the demo uses it so that no frame is
published before the extractor is connected). Discovery matches a subscribing
node's topics one at a time, so once `image` has N it also waits, for at most
DISCOVERY_SETTLE_S, until `camera_info` (and `image/compressed` when
published) have N too: an extractor's camera_info subscription then gets the
first frame's info as well, and a viewer that listens only on `image` delays
the start by that second, no more. The player stops after `max_frames`
(0 = never) or at the end of the source when `loop` is false, waits (at most
ACK_TIMEOUT_S) until reliable subscribers have acknowledged every message,
then exits with status 0; a missing or unreadable source stops it at start-up
with an error naming the path. A subscription whose QoS the image publishers
cannot serve (a reliable reader of the default best-effort stream) is warned
about and counted as incompatible_qos, as the other nodes do.
"""
from __future__ import annotations

import time
from collections import deque
from pathlib import Path

import cv2
import numpy as np
from rclpy.event_handler import PublisherEventCallbacks
from rclpy.node import Node

from ..paths import opencv_sample_data_dir
from . import parameters
from ..conversions import compressed_image_msg, image_msg
from .diagnostics import DiagnosticsPublisher
from .node_main import run
from .qos import qos_profile

DEFAULT_VIDEO = "vtest.avi"
DISCOVERY_SETTLE_S = 1.0  # longest wait for camera_info/compressed after image has its subscribers
ACK_TIMEOUT_S = 5.0  # longest wait at the end for reliable subscribers to acknowledge
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


class PlayerNode(Node):
    DEFAULT_NAME = "player"

    def __init__(self, **kwargs):
        super().__init__(self.DEFAULT_NAME, **kwargs)
        self._values = values = parameters.declare(self, parameters.PLAYER_PARAMETERS)
        self._source = FrameSource(values["source"] or default_source(), values["width"],
                                   values["height"], values["loop"])
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        qos = qos_profile(values["qos"])
        self._incompatible_qos = 0
        self._image_publisher = self.create_publisher(Image, "image", qos,
                                                      event_callbacks=self._events("image"))
        self._info_publisher = self.create_publisher(CameraInfo, "camera_info", qos,
                                                     event_callbacks=self._events("camera_info"))
        self._compressed_publisher = (
            self.create_publisher(CompressedImage, "image/compressed", qos,
                                  event_callbacks=self._events("image/compressed"))
            if values["publish_compressed"] else None)
        self._published = 0
        self._image_ready_since: float | None = None
        self._publish_times: deque = deque()
        self.finished = False
        self._finishing = False
        self._diagnostics = DiagnosticsPublisher(
            self, values["diagnostics_period"], self._diagnostic_status, lambda: "player")
        self._timer = self.create_timer(1.0 / values["rate_hz"], self._publish_next)
        height, width = self._source.frame_shape[:2]
        self.get_logger().info(
            f"publishing {self._source.path} as {width}x{height} {values['encoding']} at "
            f"{values['rate_hz']:g} Hz on {self.resolve_topic_name('image')} "
            f"(qos {values['qos']}, max_frames {values['max_frames'] or 'unlimited'}, "
            f"loop {values['loop']})")

    def _events(self, topic: str) -> PublisherEventCallbacks:
        def incompatible(info):
            self._incompatible_qos += info.total_count_change
            policy = getattr(info.last_policy_kind, "name", info.last_policy_kind)
            self.get_logger().warning(
                f"incompatible QoS on {topic} ({policy} policy): a subscription requests more "
                f"than this player offers (qos: {self._values['qos']}); no frames reach it "
                f"(set qos to reliable, or make the subscriber best effort)")
        return PublisherEventCallbacks(incompatible_qos=incompatible)

    def _publish_next(self) -> None:
        if self._finishing:
            return
        if self._published == 0 and not self._subscribers_ready():
            return
        limit = self._values["max_frames"]
        frame = self._source.next() if not (limit and self._published >= limit) else None
        if frame is None:
            self._finish()
            return
        from sensor_msgs.msg import CameraInfo
        from std_msgs.msg import Header

        header = Header(frame_id=self._values["frame_id"],
                        stamp=self.get_clock().now().to_msg())
        self._image_publisher.publish(image_msg(frame, header, self._values["encoding"]))
        self._info_publisher.publish(CameraInfo(header=header, width=frame.shape[1],
                                                height=frame.shape[0]))
        if self._compressed_publisher is not None:
            self._compressed_publisher.publish(
                compressed_image_msg(frame, header, self._values["jpeg_quality"]))
        self._published += 1
        self._publish_times.append(time.monotonic())
        if self._published == 1:
            self.get_logger().info(f"first frame published ("
                                   f"{self._image_publisher.get_subscription_count()} "
                                   f"subscription(s) on image)")

    def _camera_publishers(self) -> dict:
        publishers = {"image": self._image_publisher, "camera_info": self._info_publisher}
        if self._compressed_publisher is not None:
            publishers["image/compressed"] = self._compressed_publisher
        return publishers

    def _subscribers_ready(self) -> bool:
        wanted = self._values["wait_for_subscribers"]
        if self._image_publisher.get_subscription_count() < wanted:
            self._image_ready_since = None
            return False
        if all(publisher.get_subscription_count() >= wanted
               for publisher in self._camera_publishers().values()):
            return True
        now = time.monotonic()
        if self._image_ready_since is None:
            self._image_ready_since = now
        return now - self._image_ready_since >= DISCOVERY_SETTLE_S

    def _finish(self) -> None:
        from rclpy.duration import Duration

        self._finishing = True
        self._timer.cancel()
        self._diagnostics.publish()
        self.get_logger().info(f"finished: published {self._published} frames")
        # Reliable subscribers get every message before the process exits (best-effort
        # publishers return at once); one that does not acknowledge in time is named.
        deadline = time.monotonic() + ACK_TIMEOUT_S
        for topic, publisher in self._camera_publishers().items():
            left = max(0.0, deadline - time.monotonic())
            if not publisher.wait_for_all_acked(Duration(nanoseconds=int(left * 1e9))):
                self.get_logger().warning(
                    f"{topic}: not every subscriber acknowledged the last messages within "
                    f"{ACK_TIMEOUT_S:g} s; exiting anyway")
        # A short pause more, so that best-effort messages leave the socket too.
        self.create_timer(0.3, self._set_finished)

    def _set_finished(self) -> None:
        self.finished = True

    def close(self) -> str:
        """The closing line's summary (node_main.run)."""
        self._timer.cancel()
        return f"published {self._published} frames"

    def _diagnostic_status(self):
        from diagnostic_msgs.msg import DiagnosticStatus

        now = time.monotonic()
        while self._publish_times and self._publish_times[0] < now - 5.0:
            self._publish_times.popleft()
        values = {"frames_published": str(self._published),
                  "publish_rate_hz": f"{len(self._publish_times) / 5.0:.2f}",
                  "subscriptions": str(self._image_publisher.get_subscription_count()),
                  "incompatible_qos": str(self._incompatible_qos),
                  "source": str(self._source.path),
                  "finished": str(self._finishing).lower()}
        message = (f"published {self._published} frames" +
                   (" (finished)" if self._finishing else ""))
        level = DiagnosticStatus.WARN if self._incompatible_qos else DiagnosticStatus.OK
        return level, message, values


def main(args=None) -> int:
    return run(PlayerNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
