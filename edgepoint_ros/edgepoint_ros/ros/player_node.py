"""Player node: a real image sequence published as a camera.

Topics
    out  image              sensor_msgs/Image (bgr8, rgb8 or mono8), stamped at publish time
    out  camera_info        sensor_msgs/CameraInfo, same header; K = 0 means
                            "uncalibrated" (ROS convention): the source has no calibration
    out  image/compressed   sensor_msgs/CompressedImage (JPEG), when publish_compressed
    out  /diagnostics       frames_published, publish_rate_hz, subscriptions,
                            incompatible_qos, source, finished, <topic>_subscribers

Source (parameter `source`): a video file (anything OpenCV reads) or a
directory of images (sorted by file name), read by `frame_source.FrameSource`
(no ROS): decoded one frame at a time and resized to width x height. The
default is Debian opencv-doc's `vtest.avi`, a real static street camera.

With `wait_for_subscribers` = N it holds the first frame until N
subscriptions listen on `image` (the demo uses it so that no frame is
published before the extractor is connected). Discovery matches a subscribing
node's topics one at a time, so once `image` has N it also waits, for at most
DISCOVERY_SETTLE_S, until `camera_info` (and `image/compressed` when
published) have N too: an extractor's camera_info subscription then gets the
first frame's info as well, and a viewer that listens only on `image` delays
the start by that second, no more. Then it holds the first frame
`subscriber_settle_s` more: DDS matches the two ends of a link separately, so
a publisher can count a subscription whose own end has not matched it yet
(or is still matching the node's other topics); a best-effort frame sent
then is dropped or held back (what the demo measured: docs/benchmarks.md).
The player stops after `max_frames`
(0 = never) or at the end of the source when `loop` is false, waits (at most
ACK_TIMEOUT_S) until reliable subscribers have acknowledged every message,
then exits with status 0; a missing or unreadable source stops it at start-up
with an error naming the path. A subscription whose QoS the image publishers
cannot serve (a reliable reader of the default best-effort stream) is warned
about and counted as incompatible_qos, as the other nodes do: QoS events,
the parameter skeleton and /diagnostics (with `<topic>_subscribers` of each
output) are node_base.py's `NodeBase`.
"""
from __future__ import annotations

import time

from ..conversions import compressed_image_msg, image_msg
from ..frame_source import FrameSource, default_source
from ..frame_statistics import OK, WARN, RecentRate
from . import parameters
from .node_base import NodeBase
from .node_main import run
from .qos import qos_profile

DISCOVERY_SETTLE_S = 1.0  # longest wait for camera_info/compressed after image has its subscribers
ACK_TIMEOUT_S = 5.0  # longest wait at the end for reliable subscribers to acknowledge


class PlayerNode(NodeBase):
    DEFAULT_NAME = "player"
    PARAMETERS = parameters.PLAYER_PARAMETERS

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        values = self._values
        self._source = FrameSource(values["source"] or default_source(), values["width"],
                                   values["height"], values["loop"])
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image

        qos = qos_profile(values["qos"])
        unserved = (f"a subscription requests more than this player offers (qos: "
                    f"{values['qos']}); no frames reach it (set qos to reliable, or make the "
                    f"subscriber best effort)")
        self._image_publisher = self._output(Image, "image", qos, unserved)
        self._info_publisher = self._output(CameraInfo, "camera_info", qos, unserved)
        self._compressed_publisher = (
            self._output(CompressedImage, "image/compressed", qos, unserved)
            if values["publish_compressed"] else None)
        self._published = 0
        self._publish_rate = RecentRate(5.0)
        self._image_ready_since: float | None = None
        self._subscribers_ready_since: float | None = None
        self.finished = False
        self._finishing = False
        self._diagnostics = self._start_diagnostics()
        self._timer = self.create_timer(1.0 / values["rate_hz"], self._publish_next)
        height, width = self._source.frame_shape[:2]
        self.get_logger().info(
            f"publishing {self._source.path} as {width}x{height} {values['encoding']} at "
            f"{values['rate_hz']:g} Hz on {self.resolve_topic_name('image')} "
            f"(qos {values['qos']}, max_frames {values['max_frames'] or 'unlimited'}, "
            f"loop {values['loop']})")

    # ---- publishing ----------------------------------------------------------
    def _publish_next(self) -> None:
        if self._finishing:
            return
        if self._published == 0 and not self._first_frame_due():
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
        self._publish_rate.add()
        if self._published == 1:
            held = ("" if self._subscribers_ready_since is None else
                    f", {time.monotonic() - self._subscribers_ready_since:.2f} s after they "
                    f"matched")
            self.get_logger().info(f"first frame published ("
                                   f"{self._image_publisher.get_subscription_count()} "
                                   f"subscription(s) on image{held})")

    def _camera_publishers(self) -> dict:
        publishers = {"image": self._image_publisher, "camera_info": self._info_publisher}
        if self._compressed_publisher is not None:
            publishers["image/compressed"] = self._compressed_publisher
        return publishers

    def _first_frame_due(self) -> bool:
        if not self._values["wait_for_subscribers"]:
            return True
        if not self._subscribers_ready():
            self._subscribers_ready_since = None
            return False
        now = time.monotonic()
        if self._subscribers_ready_since is None:
            self._subscribers_ready_since = now
        return now - self._subscribers_ready_since >= self._values["subscriber_settle_s"]

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

    # ---- the end -----------------------------------------------------------------
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
        # Best-effort messages have no acknowledgement to wait for: a short pause
        # more, so that they leave the socket too.
        self.create_timer(0.3, self._set_finished)

    def _set_finished(self) -> None:
        self.finished = True

    def close(self) -> str:
        """The closing line's summary (node_main.run)."""
        self._timer.cancel()
        return f"published {self._published} frames"

    # ---- diagnostics ---------------------------------------------------------------
    def _hardware_id(self) -> str:
        return "player"

    def _status(self):
        incompatible = self._stats.total("incompatible_qos")
        values = {"frames_published": str(self._published),
                  "publish_rate_hz": f"{self._publish_rate.hz():.2f}",
                  "subscriptions": str(self._image_publisher.get_subscription_count()),
                  "incompatible_qos": str(incompatible),
                  "source": str(self._source.path),
                  "finished": str(self._finishing).lower()}
        message = (f"published {self._published} frames" +
                   (" (finished)" if self._finishing else ""))
        return WARN if incompatible else OK, message, values


def main(args=None) -> int:
    return run(PlayerNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
