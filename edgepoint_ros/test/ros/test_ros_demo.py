"""The embedded demo end to end (short run, ORB to keep it fast): real processes,
summary, picture; and a clear failure when a node cannot start."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2

import ros_harness as harness


def _demo(tmp_path, *arguments, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "edgepoint_ros.cli.demo", "--output", str(tmp_path), *arguments],
        capture_output=True, text=True, timeout=timeout, cwd=harness.REPO_ROOT)


def test_demo_runs_the_pipeline_and_writes_summary_and_picture(tmp_path):
    result = _demo(tmp_path, "--duration", "3", "--model", "orb")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "latency image -> Keypoints p50 / p99" in result.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["model"] == "orb" and summary["frames_published"] == 90
    received = summary["frames_received_by_extractor"]
    assert received + summary["messages_lost"] <= 90
    assert summary["frames_lost"] == 90 - received
    assert summary["keypoints_messages"] == received - summary["frames_skipped"] - summary["errors"]
    assert summary["errors"] == 0 and summary["matches_messages"] > 0
    assert 0 < summary["keypoints_per_frame"]["mean"] <= 1024
    latency = summary["latency_ms_image_to_keypoints"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]
    slowest = summary["slowest_keypoints"]
    assert len(slowest) == 5 and slowest[0]["latency_ms"] == round(latency["max"], 1)
    assert [s["latency_ms"] for s in slowest] == sorted((s["latency_ms"] for s in slowest),
                                                        reverse=True)
    picture = cv2.imread(summary["matches_picture"])
    assert picture is not None and picture.shape == (480, 1280, 3)
    assert (tmp_path / "logs" / "extractor.log").is_file()


def test_demo_fails_clearly_when_a_node_cannot_start(tmp_path):
    result = _demo(tmp_path, "--duration", "1", "--model", "superglue", timeout=60)
    assert result.returncode == 1
    assert "the extractor process exited with status 1 during start-up" in result.stderr
    assert "model must be one of" in result.stderr
