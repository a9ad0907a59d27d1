"""The speed-quality curve: every EdgePoint size x runtime x precision beside ORB, one command.

    speed_quality [--edgepoint-sizes tiny,small,medium] [--runtimes onnxruntime,openvino]
                  [--precisions fp32,int8] [--max-keypoints 1000] [--threads 2]
                  [--video tree.avi] [--ransac-trials 10] [--repeats 30] [--out DIR]

One configuration per row: the settings a row is timed with are the settings
its quality is measured with, the ones a node runs with. Each row is one
ExtractorConfig: model, size, runtime, precision, `--max-keypoints`, one
pyramid level, threshold 0, NMS radius 2, `--threads` (ORB gets the same
threads and budget), and images resized to 640x480 before the network.

* speed: `benchmark` (same call path as the extractor node, paced at 30 Hz,
  warm-up excluded) at 640x480 and 320x240: median and p90 ms, the ms of
  each stage, keypoints returned, time relative to ORB in the same run;
* quality, Oxford affine (reported only, never used to choose): the protocol
  of `evaluate` with the network input resized to 640x480 (keypoints are
  reported in original pixels, so the ground truth applies): MHA@3 mean and
  std over `--ransac-trials` RANSAC orders, MMA@3;
* quality, real video: `evaluate_sequence`'s match_prec and outlier_prec
  (mutual NN, F-RANSAC 5 px) frame to frame on `--video` at 640x480. The
  default, opencv-doc's tree.avi, is used by no training run, no
  validation set and no INT8 calibration.

Writes DIR/speed_quality.json, DIR/speed_quality.md (the table) and
DIR/speed_quality.png (ms against MHA@3 and match_prec). Default DIR:
artifacts/speed_quality; the copy in docs/ is the run the README quotes.
Measure with nothing else running.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..config import EDGEPOINT_SIZES, ExtractorConfig

SPEED_SIZES = "640x480,320x240"
QUALITY_SIZE = (640, 480)
DEFAULT_VIDEO = "tree.avi"


def row_configs(args) -> dict[str, ExtractorConfig]:
    """label -> the one configuration of a row (EdgePoint rows, then ORB)."""
    common = dict(max_keypoints=args.max_keypoints, num_threads=args.threads, fallback=False,
                  resize_width=QUALITY_SIZE[0], resize_height=QUALITY_SIZE[1])
    rows = {}
    for size in args.edgepoint_sizes.split(","):
        for runtime in args.runtimes.split(","):
            for precision in args.precisions.split(","):
                rows[f"edgepoint-{size} {runtime} {precision}"] = ExtractorConfig(
                    model="edgepoint", model_size=size, runtime=runtime, device="cpu",
                    precision=precision, **common)
    rows["orb"] = ExtractorConfig(model="orb", **common)
    return rows


def speed_records(args, out: Path) -> list[dict]:
    from . import benchmark
    path = out / "benchmark.json"
    code = benchmark.main([
        "--methods", "edgepoint,orb", "--edgepoint-sizes", args.edgepoint_sizes,
        "--runtimes", args.runtimes, "--precisions", args.precisions, "--sizes", SPEED_SIZES,
        "--repeats", str(args.repeats), "--threads", str(args.threads),
        "--max-keypoints", str(args.max_keypoints), "--pyramid-levels", "1",
        "--json", str(path), "--plot", str(out / "benchmark.png"), "--no-progress"])
    if code != 0:
        raise RuntimeError(f"benchmark failed (exit {code})")
    return json.loads(path.read_text())


def speed_of(records: list[dict], label: str, config: ExtractorConfig) -> dict:
    """This row's benchmark records by image size."""
    if config.model == "orb":
        method, backend, precision = "orb", None, None
    else:
        method = f"edgepoint-{config.model_size}"
        backend, precision = f"{config.runtime}-cpu", config.precision
    found = {}
    for r in records:
        if (r["kind"] == "extraction" and r["method"] == method
                and (backend is None or (r["backend"], r["precision"]) == (backend, precision))):
            found[f"{r['width']}x{r['height']}"] = r
    return found


def quality(configs: dict[str, ExtractorConfig], args) -> tuple[dict, dict, dict]:
    """(Oxford summaries, video summaries, skipped) per row label."""
    from ..evaluation.homography import evaluate_model, load_oxford_pairs
    from ..evaluation.sequence import evaluate_sequence, iter_sequence
    from ..models import create_model
    from ..paths import opencv_sample_data_dir
    from .evaluate import default_data_dir
    models, skipped = {}, {}
    for label, config in configs.items():
        try:
            models[label] = create_model(config)
        except Exception as exc:  # noqa: BLE001 - a row that cannot run is reported as such
            skipped[label] = str(exc).splitlines()[0][:200]
    pairs = load_oxford_pairs(args.data or default_data_dir())
    oxford, images = {}, {}
    for label, model in models.items():
        if not args.quiet:
            print(f"speed_quality: Oxford, {label}", file=sys.stderr, flush=True)
        oxford[label] = evaluate_model(model, pairs, ransac_trials=args.ransac_trials,
                                       image_cache=images)["summary"]
    video = Path(args.video)
    if not video.is_file():
        video = opencv_sample_data_dir() / args.video
    if not args.quiet:
        print(f"speed_quality: video {video}", file=sys.stderr, flush=True)
    frames = iter_sequence(video, width=QUALITY_SIZE[0], height=QUALITY_SIZE[1],
                           max_frames=args.max_frames)
    result = evaluate_sequence(frames, models, matchers=["mnn"], f_rej_th=5.0, name=video.stem)
    sequence = {row["method"]: {"match_prec": row["match_prec_mean"],
                                "outlier_prec": row["outlier_prec_mean"]}
                for row in result.summary() if row["matcher"] == "mnn"}
    return oxford, sequence, skipped


def build_rows(configs, speeds, oxford, sequence, skipped) -> list[dict]:
    rows = []
    for label, config in configs.items():
        speed = speeds.get(label, {})
        vga, qvga = speed.get("640x480", {}), speed.get("320x240", {})
        ox, seq = oxford.get(label, {}), sequence.get(label, {})
        rows.append({
            "label": label, "settings": config.as_dict(),
            "ms_640x480": vga.get("median_ms"), "p90_640x480": vga.get("p90_ms"),
            "ms_320x240": qvga.get("median_ms"), "p90_320x240": qvga.get("p90_ms"),
            "stages_640x480": vga.get("stages_median_ms"),
            "x_orb_640x480": vga.get("time_vs_orb"),
            "keypoints_640x480": vga.get("keypoints"),
            "oxford_mha3_mean": ox.get("mha@3_mean"), "oxford_mha3_std": ox.get("mha@3_std"),
            "oxford_mma3": ox.get("mma@3"), "oxford_keypoints": ox.get("keypoints_per_image"),
            "video_match_prec": seq.get("match_prec"),
            "video_outlier_prec": seq.get("outlier_prec"),
            "skipped": skipped.get(label)})
    return rows


def format_rows(rows: list[dict], max_keypoints: int) -> str:
    def num(value, spec):
        return "-" if value is None else format(value, spec)
    lines = ["| configuration | 640x480 ms (p90) | x ORB | pre / net / post ms | keypoints "
             "| 320x240 ms (p90) | Oxford MHA@3 (10 orders) | MMA@3 | video match_prec "
             "| outlier_prec |", "|" + "---|" * 10]
    for r in rows:
        if r["skipped"]:
            lines.append(f"| {r['label']} | cannot run here: {r['skipped']} |" + " |" * 8)
            continue
        stages = r["stages_640x480"] or {}
        short = (r["keypoints_640x480"] is not None
                 and r["keypoints_640x480"] < 0.95 * max_keypoints)
        lines.append(
            f"| {r['label']} | {num(r['ms_640x480'], '.1f')} ({num(r['p90_640x480'], '.1f')}) "
            f"| {num(r['x_orb_640x480'], '.2f')} "
            f"| {num(stages.get('preprocess'), '.1f')} / {num(stages.get('inference'), '.1f')}"
            f" / {num(stages.get('postprocess'), '.1f')} "
            f"| {num(r['keypoints_640x480'], '.0f')}{' (< 95 %)' if short else ''} "
            f"| {num(r['ms_320x240'], '.1f')} ({num(r['p90_320x240'], '.1f')}) "
            f"| {num(r['oxford_mha3_mean'], '.1f')} ± {num(r['oxford_mha3_std'], '.1f')} "
            f"| {num(r['oxford_mma3'], '.1f')} | {num(r['video_match_prec'], '.3f')} "
            f"| {num(r['video_outlier_prec'], '.3f')} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, key, name in ((axes[0], "oxford_mha3_mean", "Oxford MHA@3 (mean of RANSAC orders)"),
                          (axes[1], "video_match_prec", "video match_prec (mutual NN)")):
        for r in rows:
            if r["ms_640x480"] is None or r[key] is None:
                continue
            marker = "s" if r["label"] == "orb" else "o"
            ax.scatter(r["ms_640x480"], r[key], marker=marker)
            ax.annotate(r["label"], (r["ms_640x480"], r[key]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("whole extraction at 640x480, median ms (2 cores, paced 30 Hz)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    fig.suptitle("edgepoint_ros speed-quality: one configuration per point")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="speed_quality", description=__doc__.split("\n\n")[0])
    parser.add_argument("--edgepoint-sizes", default=",".join(EDGEPOINT_SIZES))
    parser.add_argument("--runtimes", default="onnxruntime,openvino")
    parser.add_argument("--precisions", default="fp32,int8")
    parser.add_argument("--max-keypoints", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per row and size")
    parser.add_argument("--ransac-trials", type=int, default=10)
    parser.add_argument("--video", default=DEFAULT_VIDEO,
                        help="video file, or a name under opencv-doc's data (default "
                             "%(default)s)")
    parser.add_argument("--max-frames", type=int, default=0, help="video frames (0 = all)")
    parser.add_argument("--data", type=Path, default=None, help="Oxford-layout folder")
    parser.add_argument("--out", type=Path, default=Path("artifacts/speed_quality"))
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    unknown = set(args.edgepoint_sizes.split(",")) - set(EDGEPOINT_SIZES)
    if unknown:
        print(f"speed_quality: unknown EdgePoint sizes {sorted(unknown)}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    configs = row_configs(args)
    started = time.time()
    records = speed_records(args, args.out)
    speeds = {label: speed_of(records, label, config) for label, config in configs.items()}
    oxford, sequence, skipped = quality(configs, args)
    rows = build_rows(configs, speeds, oxford, sequence, skipped)
    table = format_rows(rows, args.max_keypoints)
    print(table)
    report = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": round(time.time() - started),
              "video": args.video, "ransac_trials": args.ransac_trials, "rows": rows}
    (args.out / "speed_quality.json").write_text(json.dumps(report, indent=1, default=str))
    (args.out / "speed_quality.md").write_text(table + "\n")
    plot(rows, args.out / "speed_quality.png")
    print(f"speed_quality: wrote {args.out}/speed_quality.json, .md, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
