"""Presenting homography-benchmark results: a text table and a figure."""
from __future__ import annotations

import math
from pathlib import Path

from .homography import CURVE_THRESHOLDS, MHA_THRESHOLDS


def format_table(results: dict[str, dict]) -> str:
    """Markdown table, one row per method (results: label -> evaluate_model output)."""
    header = ("| method | MHA@1 | MHA@3 | MHA@5 | MMA@3 | MHA@3 over RANSAC orders "
              "| keypoints/img | matches/pair | s/img | runtime |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for label, result in results.items():
        s = result["summary"]
        spread = (f"{s['mha@3_mean']:.1f} ± {s['mha@3_std']:.1f} "
                  f"[{s['mha@3_range'][0]:.0f}-{s['mha@3_range'][1]:.0f}], n={s['ransac_trials']}"
                  if s.get("ransac_trials", 1) > 1 else "-")
        runtime = result.get("runtime", {})
        lines.append(
            f"| {label} | {s['mha@1']:.0f} | {s['mha@3']:.0f} | {s['mha@5']:.0f} "
            f"| {s['mma@3']:.1f} | {spread} | {s['keypoints_per_image']:.0f} "
            f"| {s['matches_per_pair']:.0f} | {s['seconds_per_image']:.3f} "
            f"| {runtime.get('runtime', '?')}/{runtime.get('device', '?')} |")
    return "\n".join(lines)


def plot_results(results: dict[str, dict], path: str | Path) -> Path:
    """MHA-vs-threshold curves and grouped bars of MHA@1/3/5 and MMA@3 (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, (curve_ax, bar_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, result in results.items():
        curve = result["summary"]["mha_curve"]
        curve_ax.plot(CURVE_THRESHOLDS, [curve[str(t)] for t in CURVE_THRESHOLDS],
                      marker="o", label=label)
    curve_ax.set_xlabel("corner error threshold (px)")
    curve_ax.set_ylabel("MHA (% of pairs)")
    curve_ax.set_ylim(0, 105)
    curve_ax.grid(alpha=0.3)
    curve_ax.legend()
    curve_ax.set_title("Homography accuracy")

    metrics = [f"mha@{t}" for t in MHA_THRESHOLDS] + ["mma@3"]
    width = 0.8 / max(len(results), 1)
    for i, (label, result) in enumerate(results.items()):
        values = [result["summary"][m] for m in metrics]
        positions = [k + (i - (len(results) - 1) / 2) * width for k in range(len(metrics))]
        bars = bar_ax.bar(positions, values, width, label=label)
        bar_ax.bar_label(bars, fmt="%.0f", fontsize=7)
    bar_ax.set_xticks(range(len(metrics)), [m.upper() for m in metrics])
    bar_ax.set_ylim(0, 108)
    bar_ax.set_ylabel("%")
    bar_ax.grid(axis="y", alpha=0.3)
    bar_ax.set_title("Oxford affine, 20 pairs" if _pairs(results) == 20 else
                     f"{_pairs(results)} pairs")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _pairs(results: dict[str, dict]) -> int:
    counts = {r["summary"]["pairs"] for r in results.values()}
    return counts.pop() if len(counts) == 1 else 0


def json_safe(value):
    """Replace inf/nan (no JSON equivalent) by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
