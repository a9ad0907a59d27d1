"""The embedded demo: player -> extractor -> matcher over real DDS, then a summary.

    bash scripts/demo.sh [--duration 10] [--model xfeat] [--output artifacts/demo]

Starts the three node executables as separate processes, exactly as
`ros2 launch edgepoint_ros demo.launch.py` would (same executables, same
`config/*.yaml`), in a random ROS_DOMAIN_ID on loopback. The player publishes
`duration * rate` frames of a real video (opencv-doc's vtest.avi by default)
at 640x480 and 30 Hz, stamped at publish time. This process listens to
keypoints, matches, image and /diagnostics like any other node would, and
prints:

* frames published / received / skipped (newest-frame policy) / lost on the
  way (published - received; the part DDS reported apart) / rejected
  (errors), from the nodes' /diagnostics;
* keypoints and matches per frame (mean / min / max);
* latency from the image stamp (= publish time) to the moment the Keypoints
  and the Matches arrive here, p50 / p99 / max: camera-to-consumer latency
  including two DDS hops, not just model time (summary.json also names the
  five slowest Keypoints: sequence, latency, when they arrived).

It writes `<output>/summary.json`, `<output>/matches.png` (two consecutive
frames side by side with a line per match) and the node logs in
`<output>/logs/`. Every process is stopped at the end, on Ctrl-C, and when a
node dies (the demo then fails naming the node and showing its last log lines).
Ctrl-C or SIGTERM (once or more) stops the nodes cleanly and exits with 0.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..config import EDGEPOINT_SIZES

import numpy as np

DEFAULT_OUTPUT = Path("artifacts/demo")


class DemoError(RuntimeError):
    pass


def add_pipeline_arguments(parser: argparse.ArgumentParser, output: Path, writes: str) -> None:
    """The camera, extractor and run options the demo and the soak share."""
    parser.add_argument("--rate", type=float, default=30.0, help="camera rate in Hz (30)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--source", default="",
                        help="video file or image directory (default: opencv-doc vtest.avi)")
    parser.add_argument("--model", default="",
                        help="override the extractor's model (default: config/extractor.yaml)")
    parser.add_argument("--model-size", default="", choices=("", *EDGEPOINT_SIZES),
                        help="override the extractor's EdgePoint size")
    parser.add_argument("--weights", default="", help="override the extractor's weights file")
    parser.add_argument("--device", default="", help="override the extractor's device")
    parser.add_argument("--precision", default="", choices=("", "fp32", "fp16", "int8"),
                        help="override the extractor's precision")
    parser.add_argument("--threads", type=int, default=-1,
                        help="override the extractor's num_threads (0 = runtime default)")
    parser.add_argument("--output", type=Path, default=output,
                        help=f"directory for {writes} ({output})")
    parser.add_argument("--domain-id", type=int, default=0,
                        help="ROS_DOMAIN_ID (default: random in 1..100)")
    parser.add_argument("--startup-timeout", type=float, default=120.0,
                        help="seconds the nodes may take to start (first run exports ONNX)")


def extractor_overrides(args) -> dict:
    """The extractor parameters the command line overrides (config/extractor.yaml
    gives the rest)."""
    overrides = {key: value for key, value in (
        ("model", args.model), ("model_size", args.model_size), ("weights", args.weights),
        ("device", args.device), ("precision", args.precision)) if value}
    if args.threads >= 0:
        overrides["num_threads"] = args.threads
    return overrides


def check_pipeline_arguments(parser: argparse.ArgumentParser, args) -> None:
    if args.rate <= 0:
        parser.error("--rate must be > 0")
    if args.width <= 0 or args.height <= 0:
        parser.error("--width and --height must be > 0")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds of video to publish (default 10)")
    add_pipeline_arguments(parser, DEFAULT_OUTPUT, "summary.json, matches.png, logs")
    args = parser.parse_args(argv)
    if args.duration <= 0:
        parser.error("--duration must be > 0")
    check_pipeline_arguments(parser, args)
    return args


def _difference(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a - b


def _stats(values) -> dict:
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return {"count": 0}
    return {"count": int(values.size), "mean": float(values.mean()), "min": float(values.min()),
            "max": float(values.max()), "p50": float(np.percentile(values, 50)),
            "p99": float(np.percentile(values, 99))}


def _latencies_ms(msgs, arrivals_ns) -> list[float]:
    """Image stamp -> arrival here, per message, in ms."""
    from ..conversions import stamp_to_ns
    return [(t - stamp_to_ns(m.header.stamp)) / 1e6 for m, t in zip(msgs, arrivals_ns)]


def _slowest(msgs, arrivals_ns, latencies: list[float], count: int = 5) -> list[dict]:
    """The `count` Keypoints messages with the longest latency: their sequence,
    latency (ms) and arrival (s after the first arrival)."""
    if not msgs:
        return []
    slowest = sorted(range(len(msgs)), key=lambda i: -latencies[i])[:count]
    return [{"sequence": int(msgs[i].sequence), "latency_ms": round(latencies[i], 1),
             "at_s": round((arrivals_ns[i] - arrivals_ns[0]) / 1e9, 2)} for i in slowest]


class Demo:
    def __init__(self, args: argparse.Namespace):
        from ..harness.processes import random_domain_id, ros_environment
        from ..harness.probe import Probe

        self.args = args
        self.output = args.output
        self.output.mkdir(parents=True, exist_ok=True)
        self.domain_id = args.domain_id or random_domain_id()
        self.env = ros_environment(self.domain_id, self.output / "ros_log")
        self.processes: dict = {}
        self.probe = Probe("edgepoint_demo", self.domain_id)

    # ---- running -------------------------------------------------------------
    def start(self, executable: str, parameters: dict | None = None):
        from ..harness.processes import NodeProcess, config_path
        process = NodeProcess(executable, params_files=[config_path(f"{executable}.yaml")],
                              parameters=parameters, env=self.env,
                              log_dir=self.output / "logs")
        self.processes[executable] = process
        return process

    def check_alive(self, names, during: str) -> None:
        for name in names:
            process = self.processes[name]
            if not process.alive():
                raise DemoError(f"the {name} process {process.exit_description()} "
                                f"{during}; last lines of {process.log_path}:\n"
                                f"{process.log_tail(15)}")

    def wait_ready(self, names, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for name in names:
            process = self.processes[name]
            if not process.wait_for_log("ready:", max(0.0, deadline - time.monotonic())):
                self.check_alive([name], "during start-up")
                raise DemoError(f"the {name} node did not start within {timeout:.0f} s; "
                                f"see {process.log_path}")

    def run(self) -> dict:
        from diagnostic_msgs.msg import DiagnosticArray
        from edgepoint_msgs.msg import Keypoints, Matches
        from sensor_msgs.msg import Image

        from ..ros.qos import OUTPUT_QOS, qos_profile

        args = self.args
        frames = max(1, int(round(args.duration * args.rate)))
        keypoints = self.probe.record(Keypoints, "keypoints", OUTPUT_QOS)
        matches = self.probe.record(Matches, "matches", OUTPUT_QOS)
        diagnostics = self.probe.record(DiagnosticArray, "/diagnostics", 100)
        images = None  # recorded only near the end, for the picture (saves this process CPU)

        overrides = extractor_overrides(args)
        print(f"[demo] ROS_DOMAIN_ID={self.domain_id}; starting extractor and matcher "
              f"(logs in {self.output / 'logs'})", flush=True)
        started = time.monotonic()
        self.start("extractor", overrides or None)
        self.start("matcher")
        self.wait_ready(["extractor", "matcher"], args.startup_timeout)
        print(f"[demo] nodes ready after {time.monotonic() - started:.1f} s; publishing "
              f"{frames} frames at {args.width}x{args.height}, {args.rate:g} Hz", flush=True)
        player_parameters = {"rate_hz": float(args.rate), "width": args.width,
                             "height": args.height, "max_frames": frames, "loop": True,
                             "wait_for_subscribers": 1}  # the extractor
        if args.source:
            player_parameters["source"] = str(args.source)
        # Everyone listens before the first frame leaves.
        self.probe.wait_for_publishers("keypoints", timeout=10.0)
        player = self.start("player", player_parameters)
        # The player holds its first frame until one subscription (the extractor's)
        # listens; this process subscribes to `image` only after that, and only for
        # the last seconds (for the picture), so it can never stand in for the extractor.
        player.wait_for_log("first frame published", args.startup_timeout)
        record_images_at = time.monotonic() + max(0.0, args.duration - 3.0)
        next_report = time.monotonic() + 2.0
        # CPU time each process spends while frames flow: where the 2 cores go
        self.cpu_start = self._cpu_seconds()
        self.cpu_last = dict(self.cpu_start)
        while player.alive():
            self.cpu_last.update(self._cpu_seconds())
            self.check_alive(["extractor", "matcher"], "while the demo ran")
            if images is None and time.monotonic() >= record_images_at:
                images = self.probe.record(Image, "image", qos_profile("sensor_data"),
                                           keep=int(args.rate * 3))
            if time.monotonic() >= next_report:
                print(f"[demo] {len(keypoints)} Keypoints, {len(matches)} Matches received",
                      flush=True)
                next_report += 2.0
            player.wait(0.1)  # returns when the player exits; else the loop's pace
        if player.returncode != 0:
            self.check_alive(["player"], "while publishing")
        self._drain(keypoints)
        self.cpu_last.update(self._cpu_seconds())
        finished_at = time.time_ns()
        # One more status from each node, sent after the last frame was handled.
        for name in ("/extractor", "/matcher"):
            diagnostics.wait_for(lambda msg: any(s.name == name for s in msg.status)
                                 and msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
                                 > finished_at, timeout=5.0)
        self.check_alive(["extractor", "matcher"], "at the end of the demo")
        return self.summarise(frames, keypoints, matches, diagnostics,
                              images.snapshot() if images is not None else [])

    def _cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system) so far of each running node process and
        of this process (the probe that receives Keypoints and Matches)."""
        seconds = {name: process.cpu_seconds() for name, process in self.processes.items()}
        seconds = {name: value for name, value in seconds.items() if value is not None}
        seconds["demo (probe)"] = time.process_time()
        return seconds

    @staticmethod
    def _drain(keypoints, quiet_s: float = 1.0, limit_s: float = 10.0) -> None:
        """Wait until no Keypoints arrived for `quiet_s` (the pipeline is empty)."""
        keypoints.wait_for_quiet(quiet_s, limit_s)

    # ---- results -------------------------------------------------------------
    def summarise(self, frames, keypoints, matches, diagnostics, images) -> dict:
        from ..ros.diagnostics import status_values

        def final(name: str) -> dict:
            for array_msg in reversed(diagnostics.snapshot()):
                for status in array_msg.status:
                    if status.name == name:
                        return status_values(status)
            return {}

        extractor, matcher, player = final("/extractor"), final("/matcher"), final("/player")
        kp_msgs, kp_arrivals = keypoints.snapshot(), list(keypoints.arrival_ns)
        m_msgs, m_arrivals = matches.snapshot(), list(matches.arrival_ns)
        kp_latencies = _latencies_ms(kp_msgs, kp_arrivals)

        def count(values: dict, key: str) -> int | None:
            return int(values[key]) if key in values else None

        summary = {
            "source": player.get("source", str(self.args.source)),
            "width": self.args.width, "height": self.args.height, "rate_hz": self.args.rate,
            "model": extractor.get("model", "?"),
            "runtime": {key[len("runtime_"):]: value for key, value in extractor.items()
                        if key.startswith("runtime_")},
            "frames_published": count(player, "frames_published") or frames,
            "frames_received_by_extractor": count(extractor, "frames_received"),
            "frames_skipped": count(extractor, "frames_skipped"),
            "matcher_frames_skipped": count(matcher, "frames_skipped"),
            "messages_lost": count(extractor, "messages_lost"),
            # every published frame the extractor never got, whatever the cause:
            # DDS loss events count only some (not a frame sent before the
            # subscription matched, nor one its queue dropped while full)
            "frames_lost": _difference(count(player, "frames_published") or frames,
                                       count(extractor, "frames_received")),
            "errors": count(extractor, "errors"),
            "keypoints_messages": len(kp_msgs),
            "keypoints_per_frame": _stats([len(m.x) for m in kp_msgs]),
            "matches_messages": len(m_msgs),
            "matches_per_frame": _stats([len(m.distances) for m in m_msgs]),
            "matcher_resets": count(matcher, "resets"),
            "matcher_sequence_gaps": count(matcher, "sequence_gaps"),
            "matcher_errors": count(matcher, "errors"),
            "latency_ms_image_to_keypoints": _stats(kp_latencies),
            # where a p99 comes from: the slowest Keypoints, when they arrived
            "slowest_keypoints": _slowest(kp_msgs, kp_arrivals, kp_latencies),
            "latency_ms_image_to_matches": _stats(_latencies_ms(m_msgs, m_arrivals)),
            "extractor_processing_ms_mean": (float(extractor["processing_ms_mean"])
                                             if "processing_ms_mean" in extractor else None),
            "cpu_ms_per_frame": {name: round(1e3 * (self.cpu_last[name] - self.cpu_start.get(
                name, 0.0)) / max(1, frames), 2) for name in self.cpu_last},
            "domain_id": self.domain_id,
        }
        summary["matches_picture"] = self.draw_matches(kp_msgs, m_msgs, images)
        (self.output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def draw_matches(self, kp_msgs, m_msgs, image_msgs) -> str | None:
        """matches.png from the Matches with most matches whose two frames we hold."""
        import cv2

        from ..conversions import image_msg_to_array, stamp_to_ns
        from ..drawing import draw_side_by_side

        images = {stamp_to_ns(m.header.stamp): m for m in image_msgs}
        frames = {(m.session_id, m.sequence): m for m in kp_msgs}
        candidates = [m for m in m_msgs
                      if stamp_to_ns(m.header.stamp) in images
                      and stamp_to_ns(m.reference_stamp) in images
                      and (m.session_id, m.reference_sequence) in frames
                      and (m.session_id, m.current_sequence) in frames]
        if not candidates:
            return None
        best = max(candidates, key=lambda m: len(m.distances))
        reference = frames[(best.session_id, best.reference_sequence)]
        current = frames[(best.session_id, best.current_sequence)]

        def xy(msg):
            return np.stack([np.asarray(msg.x, np.float32), np.asarray(msg.y, np.float32)], 1)

        picture = draw_side_by_side(
            image_msg_to_array(images[stamp_to_ns(best.reference_stamp)]), xy(reference),
            image_msg_to_array(images[stamp_to_ns(best.header.stamp)]), xy(current),
            np.asarray(best.reference_indices), np.asarray(best.current_indices), max_lines=150)
        caption = (f"{reference.model}: {len(best.distances)} matches between consecutive "
                   f"processed frames (Keypoints sequence {best.reference_sequence} -> "
                   f"{best.current_sequence})")
        cv2.rectangle(picture, (0, 0), (picture.shape[1], 34), (0, 0, 0), -1)
        cv2.putText(picture, caption, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7,
                    (255, 255, 255), 1, cv2.LINE_AA)
        path = self.output / "matches.png"
        cv2.imwrite(str(path), picture)
        return str(path)

    def close(self) -> dict[str, int]:
        """Stop every node (SIGINT to all at once, SIGKILL after 5 s) and the
        probe; returns each node's exit status."""
        from ..harness.processes import stop_all
        order = ("player", "extractor", "matcher")  # upstream first, as they are listed
        statuses = stop_all(sorted(self.processes.values(),
                                   key=lambda p: order.index(p.name) if p.name in order else 9))
        self.probe.close()
        return statuses


def format_summary(summary: dict) -> str:
    def triple(stats: dict, digits: int = 0) -> str:
        if not stats.get("count"):
            return "n/a"
        return " / ".join(f"{stats[key]:.{digits}f}" for key in ("mean", "min", "max"))

    def percentiles(stats: dict) -> str:
        if not stats.get("count"):
            return "n/a"
        return f"{stats['p50']:.1f} / {stats['p99']:.1f} / {stats['max']:.1f} ms"

    runtime = summary["runtime"]
    rows = [
        ("model", f"{summary['model']} ({runtime.get('runtime', '?')}, "
                  f"{runtime.get('device', '?')}, {runtime.get('precision', '?')})"),
        ("source", f"{summary['source']} at {summary['width']}x{summary['height']}, "
                   f"{summary['rate_hz']:g} Hz"),
        ("frames published (player)", summary["frames_published"]),
        ("frames received by the extractor", summary["frames_received_by_extractor"]),
        ("frames skipped (newest-frame policy)", summary["frames_skipped"]),
        ("frames lost on the way (published - received)", summary["frames_lost"]),
        ("  of them reported lost by DDS", summary["messages_lost"]),
        ("bad frames (errors)", summary["errors"]),
        ("Keypoints messages received", summary["keypoints_messages"]),
        ("keypoints per frame mean / min / max", triple(summary["keypoints_per_frame"])),
        ("Matches messages received", summary["matches_messages"]),
        ("matches per frame mean / min / max", triple(summary["matches_per_frame"])),
        ("matcher frames skipped / resets",
         f"{summary['matcher_frames_skipped']} / {summary['matcher_resets']}"),
        ("latency image -> Keypoints p50 / p99 / max",
         percentiles(summary["latency_ms_image_to_keypoints"])),
        ("latency image -> Matches p50 / p99 / max",
         percentiles(summary["latency_ms_image_to_matches"])),
        ("extractor time per frame (mean)",
         "n/a" if summary["extractor_processing_ms_mean"] is None
         else f"{summary['extractor_processing_ms_mean']:.1f} ms"),
        ("CPU ms per frame (both cores)", ", ".join(
            f"{name} {ms:.1f}" for name, ms in summary.get("cpu_ms_per_frame", {}).items())),
        ("picture of matches", summary["matches_picture"] or "none (no frame pair at hand)"),
    ]
    width = max(len(label) for label, _ in rows)
    lines = ["edgepoint_ros demo: player -> extractor -> matcher over DDS", "-" * (width + 30)]
    lines += [f"{label:<{width}}  {value}" for label, value in rows]
    return "\n".join(lines)


def run_stoppable(label: str, make):
    """`make()` a runner of node processes (Demo, Soak), `run()` it and always
    `close()` it. Ctrl-C and a plain `kill` (SIGINT, SIGTERM) both end it
    through the same clean shutdown (also from a shell that ignores SIGINT for
    background jobs): the first raises KeyboardInterrupt, any later one is
    ignored, so a second Ctrl-C cannot cut the nodes' shutdown short. An
    interrupted run exits with status 0 when every node stopped cleanly.
    Returns (exit status, what run() returned, or None when interrupted)."""
    from ..shutdown import ShutdownSignals

    signals = ShutdownSignals(starting=True)
    runner = None
    status, result = 0, None
    try:
        runner = make()
        result = runner.run()
    except KeyboardInterrupt:
        print(f"\n[{label}] interrupted ({signals.received or 'KeyboardInterrupt'}); "
              "stopping the nodes", file=sys.stderr, flush=True)
    except (DemoError, FileNotFoundError, ValueError) as exc:
        print(f"[{label}] FAILED: {exc}", file=sys.stderr)
        status = 1
    finally:
        signals.closing()
        if runner is not None:
            statuses = runner.close()
            print(f"[{label}] closed: nodes stopped ("
                  + ", ".join(f"{name} exit {code}" for name, code in statuses.items()) + ")",
                  file=sys.stderr, flush=True)
            if result is None and status == 0 and any(statuses.values()):
                status = 1  # interrupted, and a node did not stop cleanly
    return status, result


def main(argv=None) -> int:
    args = parse_args(argv)
    status, summary = run_stoppable("demo", lambda: Demo(args))
    if status or summary is None:
        return status
    print(format_summary(summary))
    print(f"[demo] summary written to {args.output / 'summary.json'}")
    if not summary["keypoints_messages"] or not summary["matches_messages"]:
        print("[demo] FAILED: no Keypoints or no Matches arrived", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
