#!/usr/bin/env python3
"""Extraction outputs of this checkout against another commit's, bit for bit.

    source scripts/env.sh
    python scripts/compare_outputs.py 9e6084e      # e.g. the commit before a refactor

Checks out COMMIT in a temporary git worktree, runs the same configurations
(EdgePoint medium on ONNX Runtime: one level, a 3-level pyramid, binary
descriptors, resized input with a threshold; EdgePoint on OpenVINO; XFeat;
ORB; SIFT) on opencv-doc photographs with both trees, and prints per
configuration whether keypoints, scores and descriptors are bit-identical
(and the largest difference when not). Not part of the tests: it needs git
history and a few minutes.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "edgepoint_ort_fp32": dict(model="edgepoint", model_size="medium", runtime="onnxruntime",
                               precision="fp32", max_keypoints=1024),
    "edgepoint_ort_pyramid3": dict(model="edgepoint", model_size="medium", runtime="onnxruntime",
                                   precision="fp32", pyramid_levels=3, max_keypoints=2000),
    "edgepoint_ort_binary": dict(model="edgepoint", model_size="medium", runtime="onnxruntime",
                                 precision="fp32", binary_descriptors=True),
    "edgepoint_ort_resized": dict(model="edgepoint", model_size="medium", runtime="onnxruntime",
                                  precision="fp32", resize_width=320, resize_height=256,
                                  score_threshold=0.1),
    "edgepoint_openvino_fp32": dict(model="edgepoint", model_size="medium", runtime="openvino",
                                    precision="fp32"),
    "edgepoint_openvino_pyramid3": dict(model="edgepoint", model_size="medium",
                                        runtime="openvino", precision="fp32", pyramid_levels=3,
                                        max_keypoints=2000),
    # the family and INT8 exist from 35e78bf on: compare with a commit that has them
    "edgepoint_small_openvino_int8": dict(model="edgepoint", model_size="small",
                                          runtime="openvino", precision="int8"),
    "edgepoint_small_ort_int8": dict(model="edgepoint", model_size="small",
                                     runtime="onnxruntime", precision="int8"),
    "xfeat_ort": dict(model="xfeat", runtime="onnxruntime", precision="fp32"),
    "orb": dict(model="orb"),
    "sift": dict(model="sift"),
}
EXTRACT = r'''
import glob, sys, cv2, numpy as np
from edgepoint_ros.config import ExtractorConfig
from edgepoint_ros.models import create_model
configs = eval(sys.argv[2])
paths = sorted(glob.glob("/usr/share/doc/opencv-doc/examples/data/*.jpg"))[:6]
images = [cv2.imread(p) for p in paths]
images = [cv2.resize(i, (640, 480)) if i.shape[1] > 800 else i for i in images if i is not None]
fields = set(ExtractorConfig.field_names())
out = {}
for name, settings in configs.items():
    model = create_model(ExtractorConfig(**{k: v for k, v in settings.items() if k in fields}))
    for i, image in enumerate(images):
        f = model.extract(image)
        out[f"{name}/{i}/keypoints"], out[f"{name}/{i}/scores"] = f.keypoints, f.scores
        out[f"{name}/{i}/descriptors"] = f.descriptors
np.savez(sys.argv[1], **out)
'''


def extract(package_dir: Path, out: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(package_dir))
    subprocess.run([sys.executable, "-c", EXTRACT, str(out), repr(CONFIGS)], check=True,
                   env=env, cwd=tempfile.gettempdir(), stderr=subprocess.DEVNULL)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    import numpy as np
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach",
                        str(tmp / "before"), argv[0]], check=True)
        try:
            extract(tmp / "before" / "edgepoint_ros", tmp / "before.npz")
            extract(ROOT / "edgepoint_ros", tmp / "now.npz")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(tmp / "before")], check=False)
        before, now = np.load(tmp / "before.npz"), np.load(tmp / "now.npz")
        failed = 0
        for name in CONFIGS:
            keys = [k for k in before.files if k.startswith(name + "/")]
            same = all(k in now.files and before[k].shape == now[k].shape
                       and np.array_equal(before[k], now[k]) for k in keys)
            worst = max((float(np.abs(before[k].astype(float) - now[k].astype(float)).max())
                         for k in keys if k in now.files and before[k].shape == now[k].shape
                         and before[k].size), default=0.0)
            failed += not same
            print(f"{name:26s} {'bit-identical' if same else f'differs (max {worst:.2e})'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
