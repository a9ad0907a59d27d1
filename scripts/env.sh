# Source this file (bash) to enter the edgepoint_ros environment:
#   source scripts/env.sh
# It activates the venv (ROS 2 Kilted from PyPI), overlays the colcon
# workspace (edgepoint_msgs + edgepoint_ros) and keeps DDS on loopback.
_ep_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -x "$_ep_root/.venv/bin/python" ]; then
  echo "edgepoint_ros: no environment at $_ep_root/.venv; run scripts/setup.sh first" >&2
  return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
source "$_ep_root/.venv/bin/activate"
# The venv is the ROS install prefix (ament finds rosidl and the message packages there).
case ":${AMENT_PREFIX_PATH:-}:" in *":$VIRTUAL_ENV:"*) ;; *) export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}";; esac
if [ -f "$_ep_root/install/setup.bash" ]; then
  # colcon's setup script reads unset variables: source it with nounset off.
  _ep_had_u=0; case $- in *u*) _ep_had_u=1; set +u;; esac
  # shellcheck disable=SC1091
  source "$_ep_root/install/setup.bash"
  [ "$_ep_had_u" = 1 ] && set -u
  unset _ep_had_u
fi
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# Kilted ignores ROS_LOCALHOST_ONLY; this keeps discovery on this machine.
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$_ep_root/edgepoint_ros/config/fastdds_loopback.xml}"
export ROS_LOG_DIR="${ROS_LOG_DIR:-$_ep_root/log/ros}"
export EDGEPOINT_ROS_ROOT="$_ep_root"
export EDGEPOINT_ROS_CACHE="${EDGEPOINT_ROS_CACHE:-$_ep_root/.cache/edgepoint_ros}"
unset _ep_root
