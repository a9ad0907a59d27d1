"""Soak: the camera pipeline for minutes on end, with throughput, latency and memory.

    bash scripts/soak.sh [--minutes 10] [--model xfeat] [--output artifacts/soak]

Runs the demo's set-up (same executables, same `config/*.yaml`, its process
handling: `cli/demo.py`) for `--minutes`: the player publishes a real video
(looping) at 640x480 and 30 Hz through the extractor and the matcher, each its
own process over DDS. Every minute it prints and records

* throughput: frames published (player), received / processed / skipped /
  lost / rejected (extractor, from its /diagnostics), Keypoints and Matches
  that reached this process;
* latency image stamp (= publish time) -> Keypoints arrival here, p50/p90/p99/max;
* resident memory (VmRSS from /proc/<pid>/status) and CPU use of each node.

Memory bound. A node must hold a fixed amount of memory once warmed up: every
buffer in it is bounded (one newest-frame slot, DDS histories of depth <= 10,
statistics windows of 300 samples, a throttled-log table of <= 256 kinds,
OpenVINO's cache of compiled input shapes). What still moves after warm-up is
allocator noise: glibc returns 0.9 MB frames to per-thread arenas in its own
time, Python keeps free lists. So the check is: for each node, RSS at the end
<= RSS at the end of warm-up (the first minute, or half of a shorter run) +
`--memory-bound-mb` (default 30 MB). 30 MB is several times the noise seen in
short runs (a few MB) yet catches a leak of one camera frame every 20 s over
10 minutes (30 frames of 0.9 MB), or of 2 KB per frame at 30 Hz (a stray
reference to each Keypoints message); the growth rate after warm-up (MB per
minute, least squares) is reported too, to judge longer runs.

Writes `<output>/soak.json` (settings, per-minute rows, memory samples and
verdict) and `<output>/soak.png` (latency percentiles and RSS over time), node
logs in `<output>/logs/`. Exit status 0 when the memory bound held, no node
died and Keypoints and Matches flowed; 1 otherwise. Ctrl-C or SIGTERM stops
the nodes cleanly and exits with 0 without a report.

This is a separate command, not part of the test suite (it runs for minutes).
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import numpy as np

from .demo import (Demo, DemoError, add_pipeline_arguments, check_pipeline_arguments,
                   extractor_overrides, run_stoppable)

DEFAULT_OUTPUT = Path("artifacts/soak")
NODES = ("player", "extractor", "matcher")
MINUTE_S = 60.0
# Counters are read from the nodes' /diagnostics; a short period keeps the
# per-minute differences within a few frames of the minute boundary.
DIAGNOSTICS = {"diagnostics_period": 0.25}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="run time (default 10)")
    add_pipeline_arguments(parser, DEFAULT_OUTPUT, "soak.json, soak.png, logs")
    parser.add_argument("--memory-bound-mb", type=float, default=30.0,
                        help="allowed RSS growth per node after warm-up (default 30 MB)")
    parser.add_argument("--sample-s", type=float, default=5.0,
                        help="seconds between two memory samples (default 5)")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.sample_s <= 0:
        parser.error("--minutes and --sample-s must be > 0")
    check_pipeline_arguments(parser, args)
    if args.memory_bound_mb < 0:
        parser.error("--memory-bound-mb must be >= 0")
    return args


# ---- figures ------------------------------------------------------------------------
def percentiles(values) -> dict:
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return {"count": 0}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"count": int(values.size), "p50": float(p50), "p90": float(p90),
            "p99": float(p99), "max": float(values.max())}


def warmup_seconds(duration_s: float) -> float:
    """The first minute, or the first half of a run shorter than two minutes."""
    return min(MINUTE_S, duration_s / 2.0)


def memory_verdict(samples: list[dict], warmup_s: float, bound_mb: float) -> dict:
    """Per node: RSS at the end of warm-up (the first sample at or after
    `warmup_s`), at the start and the end, growth and its rate; PASS when every
    node's end <= baseline + bound_mb. `samples`: {"t": s, "rss_mb": {node: MB}}."""
    nodes: dict[str, dict] = {}
    names = sorted({name for sample in samples for name in sample["rss_mb"]})
    for name in names:
        series = [(s["t"], s["rss_mb"][name]) for s in samples
                  if s["rss_mb"].get(name) is not None]
        after = [(t, rss) for t, rss in series if t >= warmup_s]
        if not after:
            nodes[name] = {"verdict": "FAIL", "reason": "no memory sample after warm-up"}
            continue
        baseline, end = after[0][1], after[-1][1]
        growth = end - baseline
        slope = (float(np.polyfit([t for t, _ in after], [r for _, r in after], 1)[0]) * 60.0
                 if len(after) >= 3 else 0.0)
        nodes[name] = {"start_mb": series[0][1], "baseline_mb": baseline, "end_mb": end,
                       "max_after_warmup_mb": max(r for _, r in after),
                       "growth_mb": growth, "growth_mb_per_min": slope,
                       "verdict": "PASS" if growth <= bound_mb else "FAIL"}
    verdict = ("PASS" if nodes and all(n["verdict"] == "PASS" for n in nodes.values())
               else "FAIL")
    return {"bound_mb": bound_mb, "warmup_s": warmup_s, "nodes": nodes, "verdict": verdict}


class ArrivalLog:
    """(arrival time since the start, latency ms) of every message of one topic,
    appended from the probe's thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self.times: list[float] = []
        self.latencies_ms: list[float] = []

    def add(self, t: float, latency_ms: float) -> None:
        with self._lock:
            self.times.append(t)
            self.latencies_ms.append(latency_ms)

    def between(self, start: float, end: float) -> list[float]:
        with self._lock:
            return [lat for t, lat in zip(self.times, self.latencies_ms) if start <= t < end]

    def count(self) -> int:
        with self._lock:
            return len(self.times)


# ---- the run --------------------------------------------------------------------------
class Soak(Demo):
    """The demo's processes and probe, kept running and measured."""

    def __init__(self, args: argparse.Namespace):
        super().__init__(args)
        self.keypoints = ArrivalLog()
        self.matches = ArrivalLog()
        self._status_lock = threading.Lock()
        self._status: dict[str, dict[str, str]] = {}
        self._t0_ns = time.time_ns()  # reset at the player's first frame

    # -- listening (probe thread) --
    def _listen(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from edgepoint_msgs.msg import Keypoints, Matches

        from ..conversions import stamp_to_ns
        from ..ros.diagnostics import status_values
        from ..ros.qos import OUTPUT_QOS

        def arrival(log: ArrivalLog):
            def record(msg):
                now = time.time_ns()
                log.add((now - self._t0_ns) / 1e9, (now - stamp_to_ns(msg.header.stamp)) / 1e6)
            return record

        def diagnostics(msg):
            with self._status_lock:
                for status in msg.status:
                    self._status[status.name] = status_values(status)

        node = self.probe.node
        node.create_subscription(Keypoints, "keypoints", arrival(self.keypoints), OUTPUT_QOS)
        node.create_subscription(Matches, "matches", arrival(self.matches), OUTPUT_QOS)
        node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics, 100)

    def status(self, node: str) -> dict[str, str]:
        with self._status_lock:
            return dict(self._status.get(f"/{node}", {}))

    def counters(self) -> dict[str, int]:
        extractor, matcher, player = (self.status(n) for n in ("extractor", "matcher", "player"))

        def value(values, key):
            return int(values.get(key, 0))
        return {
            "published": value(player, "frames_published"),
            "received": value(extractor, "frames_received"),
            "processed": value(extractor, "frames_processed"),
            "skipped": value(extractor, "frames_skipped"),
            "lost": value(extractor, "messages_lost"),
            "errors": value(extractor, "errors"),
            "matcher_skipped": value(matcher, "frames_skipped"),
            "matcher_lost": value(matcher, "messages_lost"),
            "matcher_errors": value(matcher, "errors"),
        }

    def sample(self, t: float) -> dict:
        rss, cpu = {}, {}
        for name in NODES:
            process = self.processes.get(name)
            if process is None:
                continue
            value = process.resident_memory_bytes()
            rss[name] = None if value is None else value / 1e6
            cpu[name] = process.cpu_seconds()
        return {"t": t, "rss_mb": rss, "cpu_s": cpu}

    def run(self) -> dict:
        args = self.args
        duration = args.minutes * MINUTE_S
        self._listen()
        overrides = extractor_overrides(args)
        print(f"[soak] ROS_DOMAIN_ID={self.domain_id}; starting extractor and matcher "
              f"(logs in {self.output / 'logs'})", flush=True)
        self.start("extractor", {**DIAGNOSTICS, **overrides})
        self.start("matcher", DIAGNOSTICS)
        self.wait_ready(["extractor", "matcher"], args.startup_timeout)
        player_parameters = {**DIAGNOSTICS, "rate_hz": float(args.rate), "width": args.width,
                             "height": args.height, "max_frames": 0, "loop": True,
                             "wait_for_subscribers": 1}
        if args.source:
            player_parameters["source"] = str(args.source)
        player = self.start("player", player_parameters)
        if not player.wait_for_log("first frame published", args.startup_timeout):
            self.check_alive(["player"], "during start-up")
            raise DemoError(f"the player published nothing; see {player.log_path}")
        self._t0_ns = time.time_ns()
        started = time.monotonic()
        print(f"[soak] {args.width}x{args.height} at {args.rate:g} Hz for {args.minutes:g} "
              f"min; memory bound +{args.memory_bound_mb:g} MB per node after "
              f"{warmup_seconds(duration):.0f} s of warm-up", flush=True)
        print(format_minute_header(), flush=True)

        samples = [self.sample(0.0)]
        minutes: list[dict] = []
        previous = {"t": 0.0, "counters": self.counters(), "sample": samples[0],
                    "keypoints": 0, "matches": 0}
        next_sample = args.sample_s
        while True:
            elapsed = time.monotonic() - started
            self.check_alive(NODES, "during the soak")
            if elapsed >= next_sample:
                samples.append(self.sample(elapsed))
                next_sample += args.sample_s
            boundary = min(previous["t"] + MINUTE_S, duration)
            if elapsed >= boundary:
                current = {"t": elapsed, "counters": self.counters(),
                           "sample": self.sample(elapsed), "keypoints": self.keypoints.count(),
                           "matches": self.matches.count()}
                samples.append(current["sample"])
                minutes.append(self.minute_row(len(minutes) + 1, previous, current))
                print(format_minute(minutes[-1]), flush=True)
                previous = current
                if elapsed >= duration:
                    break
            # the sampling loop's pace: samples and minute rows fall due at set times,
            # and a node that died is noticed within 0.2 s
            time.sleep(0.2)
        return self.report(duration, minutes, samples)

    def minute_row(self, index: int, previous: dict, current: dict) -> dict:
        start, end = previous["t"], current["t"]
        change = {key: current["counters"][key] - previous["counters"][key]
                  for key in current["counters"]}
        seconds = end - start
        row = {"minute": index, "start_s": start, "end_s": end,
               **change,
               "keypoints_received": current["keypoints"] - previous["keypoints"],
               "matches_received": current["matches"] - previous["matches"],
               "published_hz": change["published"] / seconds,
               "processed_hz": change["processed"] / seconds,
               "latency_ms": percentiles(self.keypoints.between(start, end)),
               "matches_latency_ms": percentiles(self.matches.between(start, end)),
               "rss_mb": dict(current["sample"]["rss_mb"]), "cpu_percent": {}}
        for name, cpu in current["sample"]["cpu_s"].items():
            before = previous["sample"]["cpu_s"].get(name)
            if cpu is not None and before is not None:
                row["cpu_percent"][name] = 100.0 * (cpu - before) / seconds
        return row

    def report(self, duration: float, minutes: list[dict], samples: list[dict]) -> dict:
        args = self.args
        extractor = self.status("extractor")
        totals = {key: sum(row[key] for row in minutes)
                  for key in ("published", "received", "processed", "skipped", "lost", "errors",
                              "keypoints_received", "matches_received", "matcher_skipped",
                              "matcher_lost", "matcher_errors")}
        all_latencies = self.keypoints.between(0.0, float("inf"))
        memory = memory_verdict(samples, warmup_seconds(duration), args.memory_bound_mb)
        flowing = totals["keypoints_received"] > 0 and totals["matches_received"] > 0
        report = {
            "settings": {"minutes": args.minutes, "rate_hz": args.rate, "width": args.width,
                         "height": args.height, "source": str(args.source or "vtest.avi"),
                         "model": extractor.get("model", args.model or "?"),
                         "runtime": {k[len("runtime_"):]: v for k, v in extractor.items()
                                     if k.startswith("runtime_")},
                         "memory_bound_mb": args.memory_bound_mb, "sample_s": args.sample_s,
                         "domain_id": self.domain_id},
            "minutes": minutes,
            "totals": totals,
            "latency_ms": percentiles(all_latencies),
            "memory": memory,
            "samples": samples,
            "verdict": "PASS" if memory["verdict"] == "PASS" and flowing else "FAIL",
        }
        if not flowing:
            report["failure"] = "no Keypoints or no Matches reached this process"
        self.output.mkdir(parents=True, exist_ok=True)
        (self.output / "soak.json").write_text(json.dumps(report, indent=2) + "\n")
        report["plot"] = write_plot(report, self.keypoints, self.output / "soak.png")
        return report


# ---- output ---------------------------------------------------------------------------
def format_minute_header() -> str:
    return ("[soak] min  published  received  processed  skipped  lost  errors   "
            "latency p50/p90/p99 ms      RSS MB player/extractor/matcher   CPU% extractor")


def format_minute(row: dict) -> str:
    latency = row["latency_ms"]
    lat = ("n/a" if not latency.get("count") else
           f"{latency['p50']:.0f}/{latency['p90']:.0f}/{latency['p99']:.0f}")
    rss = "/".join("-" if row["rss_mb"].get(n) is None else f"{row['rss_mb'][n]:.0f}"
                   for n in NODES)
    cpu = row["cpu_percent"].get("extractor")
    return (f"[soak] {row['minute']:>3}  {row['published']:>9}  {row['received']:>8}  "
            f"{row['processed']:>9}  {row['skipped']:>7}  {row['lost']:>4}  {row['errors']:>6}"
            f"   {lat:<26}  {rss:<32}  {'-' if cpu is None else f'{cpu:.0f}'}")


def format_report(report: dict) -> str:
    totals, latency, memory = report["totals"], report["latency_ms"], report["memory"]
    settings = report["settings"]
    lines = [
        f"soak: {settings['model']} ({settings['runtime'].get('runtime', '?')}, "
        f"{settings['runtime'].get('device', '?')}) at {settings['width']}x{settings['height']}"
        f", {settings['rate_hz']:g} Hz, {settings['minutes']:g} min",
        f"frames published {totals['published']}, received {totals['received']}, processed "
        f"{totals['processed']}, skipped {totals['skipped']}, lost {totals['lost']}, errors "
        f"{totals['errors']}; Keypoints received {totals['keypoints_received']}, Matches "
        f"{totals['matches_received']} (matcher skipped {totals['matcher_skipped']}, lost "
        f"{totals['matcher_lost']}, errors {totals['matcher_errors']})",
        f"(counters are each node's own, read from /diagnostics every "
        f"{DIAGNOSTICS['diagnostics_period']:g} s: at a minute boundary two nodes' figures can be "
        f"a few frames apart)",
    ]
    if latency.get("count"):
        lines.append(f"latency image -> Keypoints p50 {latency['p50']:.1f} / p90 "
                     f"{latency['p90']:.1f} / p99 {latency['p99']:.1f} / max "
                     f"{latency['max']:.1f} ms")
    lines.append(f"memory (RSS; bound: end <= end of warm-up at {memory['warmup_s']:.0f} s + "
                 f"{memory['bound_mb']:g} MB):")
    for name, node in memory["nodes"].items():
        if "baseline_mb" not in node:
            lines.append(f"  {name:<10} {node['verdict']}: {node['reason']}")
            continue
        lines.append(f"  {name:<10} start {node['start_mb']:.0f} MB, after warm-up "
                     f"{node['baseline_mb']:.0f} MB, end {node['end_mb']:.0f} MB (growth "
                     f"{node['growth_mb']:+.1f} MB, {node['growth_mb_per_min']:+.2f} MB/min)  "
                     f"{node['verdict']}")
    lines.append(f"verdict: {report['verdict']}" +
                 (f" ({report['failure']})" if "failure" in report else ""))
    return "\n".join(lines)


def write_plot(report: dict, keypoints: ArrivalLog, path: Path, window_s: float = 10.0) -> str:
    """Latency percentiles per `window_s` and RSS per node over time."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = max((s["t"] for s in report["samples"]), default=0.0)
    centres, p50, p90, p99 = [], [], [], []
    for start in np.arange(0.0, end, window_s):
        stop = min(start + window_s, end)
        values = keypoints.between(start, stop)
        if values:
            centres.append((start + stop) / 2 / 60.0)
            a, b, c = np.percentile(values, [50, 90, 99])
            p50.append(a), p90.append(b), p99.append(c)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for values, label in ((p50, "p50"), (p90, "p90"), (p99, "p99")):
        top.plot(centres, values, label=label)
    top.set_ylabel(f"image -> Keypoints latency, ms ({window_s:g} s windows)")
    top.legend()
    top.grid(alpha=0.3)
    memory = report["memory"]
    for name in NODES:
        points = [(s["t"] / 60.0, s["rss_mb"][name]) for s in report["samples"]
                  if s["rss_mb"].get(name) is not None]
        if not points:
            continue
        line, = bottom.plot(*zip(*points), label=name)
        node = memory["nodes"].get(name, {})
        if "baseline_mb" in node:
            bottom.axhline(node["baseline_mb"] + memory["bound_mb"], color=line.get_color(),
                           linestyle=":", linewidth=1)
    bottom.axvline(memory["warmup_s"] / 60.0, color="grey", linestyle="--", linewidth=1,
                   label="end of warm-up")
    bottom.set_ylabel("resident memory, MB (dotted: bound)")
    bottom.set_xlabel("minutes")
    bottom.legend()
    bottom.grid(alpha=0.3)
    settings = report["settings"]
    figure.suptitle(f"soak: {settings['model']} at {settings['width']}x{settings['height']}, "
                    f"{settings['rate_hz']:g} Hz - memory {memory['verdict']}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return str(path)


def main(argv=None) -> int:
    args = parse_args(argv)
    status, report = run_stoppable("soak", lambda: Soak(args))
    if status or report is None:  # failed, or interrupted (Ctrl-C): no report
        return status
    print(format_report(report))
    print(f"[soak] report written to {args.output / 'soak.json'} and {report['plot']}")
    return 0 if report["verdict"] == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
