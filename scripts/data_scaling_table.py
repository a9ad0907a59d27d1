#!/usr/bin/env python3
"""The data-scaling table of docs/data_scaling.md from the runs' log.csv:
training images, step reached, median sec/step, and the trainer's held-out
validation (val_ha3 / val_mma3, 32 synthetic pairs of the held-out pictures,
the same pairs in every run of seed 2) at each validation step.

    python scripts/data_scaling_table.py            # markdown table on stdout
"""
from __future__ import annotations

import csv
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = (("120 (v21 recipe, no index)", ("training_runs/scale-120", "training_runs/edgepoint-v21")),
        ("1,000", ("training_runs/scale-1000",)),
        ("all", ("training_runs/scale-all",)))
STEPS = (500, 1000, 1500)


def _images(run: Path) -> str:
    data_path = run / "data.json"
    if not data_path.exists():
        return "?"
    return f"{len(json.loads(data_path.read_text())['training_pictures']):,}"


def row(label: str, candidates) -> str:
    run = next((ROOT / c for c in candidates if (ROOT / c / "log.csv").exists()), None)
    if run is None:
        return f"| {label} | not started | | | " + " | ".join("" for _ in STEPS) + " |"
    with open(run / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    step = int(rows[-1]["step"]) if rows else 0
    speed = statistics.median(float(r["sec_per_step"]) for r in rows[-200:]) if rows else 0.0
    cells = []
    for s in STEPS:
        hit = [r for r in rows if int(r["step"]) == s and r.get("val_ha3")]
        cells.append(f"{float(hit[0]['val_ha3']):.3f} / {float(hit[0]['val_mma3']):.3f}"
                     if hit else "")
    name = run.relative_to(ROOT)
    return (f"| {label} | {_images(run)} | `{name}` | {step} | {speed:.1f} | "
            + " | ".join(cells) + " |")


def main() -> int:
    print("| images | training images | run | step | sec/step | "
          + " | ".join(f"val HA@3 / MMA@3 at {s}" for s in STEPS) + " |")
    print("|---|---|---|---|---|" + "---|" * len(STEPS))
    for label, candidates in RUNS:
        print(row(label, candidates))
    return 0


if __name__ == "__main__":
    sys.exit(main())
