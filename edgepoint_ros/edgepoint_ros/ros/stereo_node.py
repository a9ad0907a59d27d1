"""Stereo / multi-camera extractor: synchronised camera images in, keypoints per camera and left-right matches out.

Topics (executable and node `stereo_extractor`; `cameras` = [left, right] by default)
    in   <name>/image          sensor_msgs/Image of each camera (encodings as the extractor),
                               or with image_transport: compressed
         <name>/image/compressed   sensor_msgs/CompressedImage (JPEG, PNG, ...)
    in   <name>/camera_info    sensor_msgs/CameraInfo (optional): normalised coordinates,
                               RANSAC on undistorted pixels
    out  <name>/keypoints      edgepoint_msgs/Keypoints per camera; the cameras of one
                               synchronised set share session_id and sequence
    out  stereo/matches        edgepoint_msgs/Matches between the first two cameras:
                               reference = cameras[0] (left), current = cameras[1]
                               (right; header = its Keypoints header), RANSAC inliers
    out  /diagnostics          per-camera frames received / without partner, sets,
                               matches and inliers per set, calibration per camera

Synchronisation: `stream_sync.ApproximateTimeSynchronizer` (message_filters'
policy is not installable here; ours is tested on its own), with the `slop`
and `queue_size` parameters. Every image is accounted for: it is part of a
set, still waiting for its partners, or dropped and counted per camera and
reason in /diagnostics (`<name>_no_partner`, `<name>_queue_overflow`,
`<name>_late`; `frames_without_partner` is their sum), with a warning (at
most one per 5 s per camera and reason); at shutdown the frames still waiting
are counted as `unmatched_at_end` and named in the closing line.

Processing follows the newest-frame policy (newest_frame.py) per set: the
subscription callbacks only feed the synchroniser, a worker thread extracts
the keypoints of all cameras of the newest complete set with one model, so a
slow model never blocks the executor or builds a queue (a set replaced before
the worker took it is counted as frames_skipped). All cameras of a set are
decoded and extracted before anything is published: a bad image drops its
whole set (counted as an error, logged with the camera), never half of it.

Left-right matching (`frontend.match_pair`, no ROS) matches the right image
to the left one the way the matcher tracks a frame against its reference
(`tracking.match_frames`), with the matcher's settings (mutual, ratio,
max_distance) and geometric verification (verification, ransac_*): F-RANSAC
fits any calibrated or uncalibrated rig, rectified or not. When both cameras
have usable CameraInfo, RANSAC runs on undistorted pixel coordinates.

The model settings are fixed at start-up (read-only parameters); the model is
built and tried on a frame as the extractor's (node_base.py: at least one
warm-up run, a runtime fallback warned about). Matching, verification and
calibration_max_age can change at run time. QoS events, the parameter
skeleton and /diagnostics are node_base.py's.
"""
from __future__ import annotations

import secrets
import time

import numpy as np

from ..conversions import (MessageError, compressed_msg_to_array, features_to_keypoints_msg,
                           image_msg_to_array, stamp_to_ns)
from ..frontend import camera_names, match_pair, pair_matching_config
from ..stream_sync import DROP_REASONS, ApproximateTimeSynchronizer
from . import parameters
from .node_base import FrameNode
from .node_main import apply_blas_threads, run
from .qos import describe, qos_profile
from .track_messages import matches_msg, set_normalized

_DROP_TEXT = {
    "no_partner": "no frame of every other camera within slop",
    "queue_overflow": "queue full (another camera sends nothing)",
    "late": "arrived after its partners were released",
    "unmatched_at_end": "still unmatched at shutdown",
}


class StereoNode(FrameNode):
    DEFAULT_NAME = "stereo_extractor"
    PARAMETERS = parameters.STEREO_PARAMETERS

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._blas_threads = apply_blas_threads(self, self._values["blas_threads"])
        self._cameras = camera_names(self._values["cameras"])
        self._pair_settings = pair_matching_config(self._values)
        self._config = parameters.extractor_config(self._values)
        self._model = self._build_model(self._config)
        self._runtime = self._model.runtime_info()
        self._session_id = secrets.randbits(32)
        self._sequence = 0
        self._last_set: dict[str, str] = {}
        self._closing = False

        from edgepoint_msgs.msg import Keypoints, Matches
        from sensor_msgs.msg import CompressedImage, Image

        self._sync = ApproximateTimeSynchronizer(
            len(self._cameras), queue_size=self._values["queue_size"],
            slop_s=self._values["slop"], callback=self._on_set, on_drop=self._on_drop)
        input_qos = qos_profile(self._values["qos"])
        compressed = self._values["image_transport"] == "compressed"
        image_type, image_topic = ((CompressedImage, "image/compressed") if compressed
                                   else (Image, "image"))
        self._decode = compressed_msg_to_array if compressed else image_msg_to_array
        self._keypoints_publishers = []
        self._calibrations_by_camera = []
        for index, name in enumerate(self._cameras):
            self.create_subscription(
                image_type, f"{name}/{image_topic}", lambda msg, i=index: self._on_image(i, msg),
                input_qos, event_callbacks=self._subscription_events(f"{name}/{image_topic}"))
            self._keypoints_publishers.append(self._output(Keypoints, f"{name}/keypoints"))
            self._calibrations_by_camera.append(self._camera_info(f"{name}/camera_info"))
        self._matches_publisher = self._output(Matches, "stereo/matches")
        self._diagnostics = self._start_diagnostics()
        self._start_worker("stereo-worker", self._process)
        topics = ", ".join(self.resolve_topic_name(f"{name}/{image_topic}")
                           for name in self._cameras)
        self.get_logger().info(
            f"ready: model {self._config.model}, runtime {self._runtime}, cameras {topics} "
            f"(QoS {describe(input_qos)}), slop {self._values['slop']:g} s, queue "
            f"{self._values['queue_size']}, stereo pair {self._cameras[0]}-{self._cameras[1]} "
            f"verified by {self._pair_settings.verification}, session {self._session_id}, "
            f"BLAS threads {self._blas_threads}")

    # ---- input: images -> synchroniser -> worker -----------------------------
    def _on_image(self, camera: int, msg) -> None:
        self._stats.received()
        self._stats.count(f"{self._cameras[camera]}_frames_received")
        self._sync.add(camera, stamp_to_ns(msg.header.stamp), msg)

    def _on_set(self, *messages) -> None:
        self._worker.submit(messages)

    def _on_drop(self, camera: int, stamp_ns: int, reason: str) -> None:
        if self._closing:  # counted in the closing line
            return
        name = self._cameras[camera]
        self._log_warning(f"{name} frame stamped {stamp_ns * 1e-9:.6f} s dropped: "
                          f"{_DROP_TEXT.get(reason, reason)} ({reason}; slop "
                          f"{self._values['slop']:g} s)")

    def _describe_item(self, messages) -> str:
        stamps = ", ".join(f"{stamp_to_ns(m.header.stamp) * 1e-9:.6f}" for m in messages)
        return f"synchronised set (stamps {stamps} s)"

    # ---- processing ----------------------------------------------------------
    def _process(self, messages) -> None:
        started = time.perf_counter()
        sequence = self._sequence
        outputs = []  # (keypoints message, features, camera model or None) per camera
        for name, msg, calibration in zip(self._cameras, messages,
                                          self._calibrations_by_camera):
            try:
                image = self._decode(msg)
            except MessageError as exc:
                raise MessageError(f"camera {name}: {exc}") from exc
            features = self._model.extract(image)
            camera = calibration.camera_for(stamp_to_ns(msg.header.stamp),
                                            *features.image_size)
            keypoints = features_to_keypoints_msg(features, msg.header, self._config.model,
                                                  self._session_id, sequence)
            if camera is not None:
                set_normalized(keypoints, camera.normalize(features.keypoints))
            outputs.append((keypoints, features, camera))
        (left_msg, left, left_camera), (right_msg, right, right_camera) = outputs[:2]
        pair = match_pair(left, right, self._pair_settings, left_camera, right_camera)

        for publisher, (keypoints, _, _) in zip(self._keypoints_publishers, outputs):
            publisher.publish(keypoints)
        left_stamp_ns = stamp_to_ns(left_msg.header.stamp)
        self._matches_publisher.publish(matches_msg(right_msg.header, pair.matches_fields(
            left_stamp_ns=left_stamp_ns, session_id=self._session_id, sequence=sequence,
            num_left=len(left), num_right=len(right))))
        self._sequence += 1

        self._stats.processed(self._latency_ms(left_stamp_ns),
                              (time.perf_counter() - started) * 1e3,
                              keypoints=np.mean([len(f) for _, f, _ in outputs]),
                              matches=pair.num_matches, inliers=pair.num_inliers)
        self._last_set = {"num_matches": str(pair.num_matches),
                          "num_inliers": str(pair.num_inliers)}
        self._last_set.update({f"{name}_num_keypoints": str(len(features))
                               for name, (_, features, _) in zip(self._cameras, outputs)})

    # ---- parameters, diagnostics, shutdown -------------------------------------
    def _apply_parameters(self, values: dict) -> None:
        self._pair_settings = pair_matching_config(values)

    def _diagnostic_values(self, values: dict[str, str]) -> None:
        sync = self._sync.stats()
        values["sets_synchronised"] = str(sync.sets_emitted)
        values["frames_without_partner"] = str(sum(
            sync.dropped_total(i) for i in range(len(self._cameras))))
        for index, name in enumerate(self._cameras):
            values[f"{name}_queued"] = str(sync.queued[index])
            for reason in DROP_REASONS:
                values[f"{name}_{reason}"] = str(sync.dropped[reason][index])
            values.update(self._calibrations_by_camera[index].diagnostics(prefix=f"{name}_"))
        values.update(self._last_set)
        values.update({"model": self._config.model, "session_id": str(self._session_id),
                       "sequence": str(self._sequence)})
        values.update({f"runtime_{key}": str(value) for key, value in self._runtime.items()})

    def close(self) -> str:
        """Stop the worker (node_main.run, before the context shuts down);
        frames still waiting for partners are counted (unmatched_at_end in
        /diagnostics) and, like a set still in flight, named in the closing
        line's summary rather than warned about one by one."""
        self._closing = True
        unmatched = self._sync.flush()
        in_flight = self._worker.close().in_flight
        return self._stats.closing_summary(in_flight, frames_unmatched_at_end=unmatched)


def main(args=None) -> int:
    return run(StereoNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
