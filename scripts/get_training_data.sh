#!/usr/bin/env bash
# Install the offline training images (Debian packages; free licences, see
# /usr/share/doc/<package>/copyright) and index them for training at scale.
#
#   scripts/get_training_data.sh [--install-only] [index_training_images options]
#
# 1. The photo packages the trainer has always read (`pkgs`, = training/data.py
#    TRAINING_PACKAGES): mate-backgrounds, plasma-workspace-wallpapers,
#    ukui-wallpapers, gnome-backgrounds, lomiri-wallpapers (16.04, 20.04),
#    opencv-doc.
# 2. The packages of the image index (`scale_packages`, with (1) =
#    training/image_index.py SOURCE_PACKAGES): more wallpapers, landscape
#    panoramas, map imagery and game texture packs (about 9 GB to download,
#    14 GB installed), installed without their recommendations (no games, no
#    desktop: data and fonts only).
# 3. `python -m edgepoint_ros.cli.index_training_images` (niced): filters,
#    de-duplicates and caches them under $EDGEPOINT_TRAINING_INDEX
#    (default /var/cache/edgepoint_ros/training_images), excluding Oxford and
#    the validation pictures by hash. Idempotent: a second run installs
#    nothing and decodes only files that are new or changed. See
#    docs/training_data.md.
# Only needed for training; never run in CI.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pkgs=(mate-backgrounds plasma-workspace-wallpapers ukui-wallpapers gnome-backgrounds
      lomiri-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 opencv-doc)
scale_packages=(sway-backgrounds desktop-base stellarium-data marble-data marble-qt-data
                nexuiz-textures ufoai-textures openarena-081-textures supertuxkart-data
                redeclipse-data flightgear-data-base 0ad-data colobot-common-textures
                torcs-data trigger-rally-data flightgear-data-models flightgear-data-ai
                megaglest-data freeorion-data scorched3d-data extremetuxracer-data
                neverball-data warzone2100-data nexuiz-data ufoai-data openarena-data
                openarena-085-data openarena-088-data openarena-081-maps openarena-081-misc
                openarena-081-players naev-data endless-sky-data blender-data lugaru-data
                trackballs-data enlightenment-data sweethome3d-furniture krita-data
                libirrlicht-doc mypaint-data bzflag-data palapeli-data wesnoth-1.16-data
                widelands-data)
install_only=0
if [ "${1:-}" = "--install-only" ]; then install_only=1; shift; fi

SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
missing=()
for p in "${pkgs[@]}" "${scale_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${#missing[@]} packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "training images installed: ${pkgs[*]} ${scale_packages[*]}"
[ "$install_only" = 1 ] && exit 0

if [ -z "${EDGEPOINT_TRAINING_INDEX:-}" ] && [ ! -w /var/cache ]; then
  export EDGEPOINT_TRAINING_INDEX="$ROOT/.cache/training_images"
fi
set +u
# shellcheck disable=SC1091
source "$ROOT/scripts/env.sh"
set -u
cd "$ROOT"
exec nice -n 19 python -m edgepoint_ros.cli.index_training_images "$@"
