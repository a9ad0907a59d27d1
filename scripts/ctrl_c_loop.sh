#!/usr/bin/env bash
# Ctrl-C under the real `ros2 launch`, N times in a row (issue 20; not part of CI: minutes).
#   scripts/ctrl_c_loop.sh [RUNS (20)] [SECONDS (20)] [launch arguments...]
# Each run: a player publishes the default video on /image; then
#   timeout --preserve-status -s INT SECONDS ros2 launch edgepoint_ros edgepoint.launch.py ARGS
# `timeout` sends SIGINT to its whole process group (ros2 launch and every node it
# started) as a terminal's Ctrl-C does, so each node gets it twice: directly and
# forwarded by launch. Then the player gets SIGINT too. A run is clean when ros2 launch
# and the player exit 0, launch reports every node "finished cleanly" (exit 0) without
# escalating to SIGTERM, each node (and the player) logged "closed (SIGINT)", Matches
# flowed before the signal, and no output holds a traceback, "terminate called", an
# ERROR/FATAL line or "process has died". Needs ../shared/tools/ros2-launch (installed
# into .ros2-launch/ by scripts/setup.sh). Logs: log/ctrl_c_loop/run-N.log, player-N.log.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS="${1:-20}"
SECONDS_PER_RUN="${2:-20}"
shift $(( $# > 2 ? 2 : $# ))
set +u
source scripts/env.sh || exit 1
[ -f .ros2-launch/env.sh ] || bash ../shared/tools/ros2-launch/install.sh .ros2-launch || exit 1
source .ros2-launch/env.sh
set -u
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}"
LOGS="$ROOT/log/ctrl_c_loop"
rm -rf "$LOGS" && mkdir -p "$LOGS"
export ROS_LOG_DIR="$LOGS/ros" RCUTILS_LOGGING_BUFFERED_STREAM=0 PYTHONUNBUFFERED=1
PLAYER="$(ros2 pkg prefix edgepoint_ros)/lib/edgepoint_ros/player"
PLAYER_CONFIG="$(ros2 pkg prefix edgepoint_ros)/share/edgepoint_ros/config/player.yaml"
echo "[ctrl_c_loop] $RUNS runs of: timeout --preserve-status -s INT $SECONDS_PER_RUN ros2 launch" \
     "edgepoint_ros edgepoint.launch.py $* (ROS_DOMAIN_ID=$ROS_DOMAIN_ID; logs in $LOGS)"

clean=0
for run in $(seq 1 "$RUNS"); do
  log="$LOGS/run-$run.log" player_log="$LOGS/player-$run.log"
  setsid "$PLAYER" --ros-args --params-file "$PLAYER_CONFIG" >"$player_log" 2>&1 &
  player=$!
  timeout --preserve-status -s INT "$SECONDS_PER_RUN" \
    ros2 launch edgepoint_ros edgepoint.launch.py "$@" >"$log" 2>&1
  status=$?
  kill -INT "$player" 2>/dev/null
  wait "$player"
  player_status=$?
  problems=()
  [ "$status" = 0 ] || problems+=("ros2 launch exited $status")
  [ "$player_status" = 0 ] || problems+=("player exited $player_status")
  for node in extractor matcher; do
    grep -Eq "^\[INFO\] \[$node-[0-9]+\]: process has finished cleanly" "$log" \
      || problems+=("$node did not finish cleanly")
    grep -Eq "^\[$node-[0-9]+\] .*closed \(SIGINT\)" "$log" || problems+=("$node: no closing line")
  done
  grep -q "closed (SIGINT)" "$player_log" || problems+=("player: no closing line")
  grep -q "first Keypoints frame" "$log" || problems+=("no data flowed")
  for bad in "Traceback" "terminate called" "[ERROR]" "[FATAL]" "process has died" \
             "sending signal 'SIGTERM'" "KeyboardInterrupt"; do
    grep -qF "$bad" "$log" "$player_log" && problems+=("'$bad' in the output")
  done
  if [ ${#problems[@]} -eq 0 ]; then
    clean=$((clean + 1))
    echo "[ctrl_c_loop] run $run/$RUNS: clean"
  else
    echo "[ctrl_c_loop] run $run/$RUNS: NOT clean: $(IFS=';'; echo "${problems[*]}") (see $log)"
  fi
done
echo "[ctrl_c_loop] $clean of $RUNS runs clean (every process exited 0, no traceback)"
[ "$clean" = "$RUNS" ]
