#!/usr/bin/env bash
# Run every test: set up the environment if needed (idempotent, no demo), then pytest.
#   scripts/test.sh [pytest args...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh --no-demo
set +u
source scripts/env.sh
set -u
# A random DDS domain per run keeps parallel runs on one machine apart.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}"
export ROS_LOG_DIR="$ROOT/log/test-ros"
exec python -m pytest -p no:cacheprovider -ra "$@" edgepoint_ros/test
