#!/usr/bin/env python3
"""The data-scaling plot of docs/data_scaling.md: real-data validation score
(choosing) and Oxford MHA@3 (reported only) against the number of training
images, from the evaluation files in docs/data_scaling/: validate_real*.json
and oxford*.json, two runs of each set (v13 / v21 / scale-all, then
scale-1000 / scale-all-3d; the released weights and v21 in both, with the
same figures: both sets are deterministic).

    python scripts/data_scaling_plot.py [--out docs/data_scaling/data_scaling.png]

POINTS maps a method label of those runs to its training images; the start
(v13) and the released weights are drawn as horizontal references.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "docs" / "data_scaling"
POINTS = {"medium": 120, "k1": 1000, "all": 11108}     # label -> training images
WITH_3D = {"3d": 11108}                                 # the same images, 30 % 3D pairs
REFERENCES = {"v13": "start (v13)", "released": "released weights"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DATA / "data_scaling.png")
    args = parser.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    def merged(pattern: str) -> dict:
        methods = {}
        for path in sorted(DATA.glob(pattern)):
            methods.update(json.loads(path.read_text())["methods"])
        return methods

    real, oxford = merged("validate_real*.json"), merged("oxford*.json")
    panels = (("real-data validation score (choosing)",
               lambda m: (real[m]["score"], real[m]["score_std"]), real),
              ("Oxford MHA@3, 10 RANSAC orders (reported only)",
               lambda m: (oxford[m]["summary"]["mha@3_mean"], oxford[m]["summary"]["mha@3_std"]),
               oxford))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (title, value, table) in zip(axes, panels):
        labels = [m for m in POINTS if m in table]
        xs = [POINTS[m] for m in labels]
        ys, es = zip(*(value(m) for m in labels))
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=4, label="v21 recipe, 1500 steps")
        for m, images in WITH_3D.items():
            if m in table:
                y, e = value(m)
                ax.errorbar([images], [y], yerr=[e], marker="s", color="tab:green", capsize=4,
                            linestyle="none", label="same, 30 % 3D-structure pairs")
        for m, name in REFERENCES.items():
            if m in table:
                ax.axhline(value(m)[0], linestyle="--", linewidth=1, color="grey" if m == "v13"
                           else "tab:red", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("training images")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
