#!/usr/bin/env bash
# Install the offline training images (Debian packages; photos and wallpapers
# with free licences, see /usr/share/doc/<package>/copyright):
#   mate-backgrounds, plasma-workspace-wallpapers, ukui-wallpapers,
#   gnome-backgrounds, lomiri-wallpapers (16.04, 20.04), opencv-doc.
# Only needed for `python -m edgepoint_ros.cli.train`; never run in CI.
set -euo pipefail
pkgs=(mate-backgrounds plasma-workspace-wallpapers ukui-wallpapers gnome-backgrounds
      lomiri-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 opencv-doc)
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${pkgs[@]}"
echo "training images installed: ${pkgs[*]}"
