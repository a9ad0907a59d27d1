#!/usr/bin/env bash
# The main job: a real video published as a camera -> extractor -> matcher,
# each a separate ROS 2 process talking over DDS on loopback; prints a summary
# (frames, skipped/lost, keypoints and matches per frame, latency p50/p99) and
# writes artifacts/demo/summary.json and artifacts/demo/matches.png.
#   scripts/demo.sh [--duration 10] [--model edgepoint|xfeat|orb|sift] [--help]
set -eo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
source scripts/env.sh
exec python -m edgepoint_ros.cli.demo "$@"
