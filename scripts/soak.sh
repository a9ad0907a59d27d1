#!/usr/bin/env bash
# Soak: the camera pipeline (player -> extractor -> matcher, separate ROS 2
# processes over DDS) for minutes on end at 640x480 and 30 Hz; prints per
# minute throughput, skipped/lost/errors, latency p50/p90/p99 and each node's
# resident memory, checks the memory bound (PASS/FAIL, exit status), and writes
# artifacts/soak/soak.json and artifacts/soak/soak.png. Not part of the tests.
#   scripts/soak.sh [--minutes 10] [--model edgepoint|xfeat|orb|sift] [--help]
set -eo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
source scripts/env.sh
exec python -m edgepoint_ros.cli.soak "$@"
