"""Speed benchmark: every available EdgePoint backend x precision against ORB, SIFT and XFeat.

    benchmark [--sizes 640x480,320x240,1280x720] [--repeats 30] [--threads 2]
              [--edgepoint-sizes tiny,small,medium] [--rate 30]
              [--edgepoint-weights PATH] [--json PATH] [--plot PATH]

What is timed: the whole extraction a node does per frame, `model.extract`
(image checks, pre-processing, inference, post-processing: NMS, top-k,
sub-pixel refinement, descriptor sampling), wall clock, on real photographs
from Debian's opencv-doc (not the Oxford benchmark) resized to each size.

Pacing (`--rate`, default 30 Hz): each timed frame starts on the tick of a
camera at that rate, as frames reach a node, and not right after the
previous one: a runtime whose worker threads fall asleep between frames pays
for waking them on every frame, and a node pays that too (back to back,
`--rate 0`, the same models measured 20-40 % faster here).

How: every configuration is built first and warmed up at every size (engine
builds, per-shape compilation and INT8 calibration happen there, untimed).
The timed runs are interleaved round-robin: in turns, size after size and
configuration after configuration, until each has `--repeats` timed runs per
size, so a change in machine speed (another process, thermal throttling) hits
all configurations alike instead of the one that happened to run at that
moment. A turn is one untimed settling frame and then `--block` timed frames
of the same configuration: a node runs one model frame after frame, while
the first frame after a switch pays for the previous runtime (its worker
threads still spinning, its buffers in the caches), which measured +60% on
OpenVINO right after ONNX Runtime here. Each configuration reports the median
and 90th percentile over its runs, and its time relative to ORB at the same
size.

`--postprocess numpy,graph` adds rows with EdgePoint's detection run as
ONNX operators on the network's runtime (`detection_graph.py`).

Configurations: each EdgePoint size of `--edgepoint-sizes` on every runtime/device of the `auto` order
(`runtimes/selection.py`) and the PyTorch reference, each in fp32, fp16 and
int8, with fallback off, so one that cannot run here is listed as skipped with
the reason instead of silently measuring something else; EdgePoint on an image
pyramid of `--pyramid-levels` levels (the homography benchmark's setting) on
the runtime `auto` picks, fp32 and int8; OpenCV ORB and SIFT;
XFeat on the runtime `auto` picks. All keep at most `--max-keypoints` (1000;
ORB's budget) keypoints.

Matching: brute-force mutual nearest neighbour of 1000 x 1000 descriptors
(`matching.match_descriptors`): 64-d float32 (L2), the same sign-binarised to
64 bits (Hamming), and ORB's 256 bits.

`--json PATH` writes a list of records (method, backend, precision, width,
height, median_ms, p90_ms, keypoints, ...); the plot goes to `--plot`
(default artifacts/benchmark/benchmark.png).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..config import EDGEPOINT_SIZES, MAX_PYRAMID_LEVELS, POSTPROCESS, ExtractorConfig
from ..paths import opencv_sample_data_dir
from ..runtimes.base import RuntimeUnavailable, first_line
from ..runtimes.calibration import is_benchmark_image
from ..runtimes.selection import AUTO_ORDER

DEFAULT_SIZES = "640x480,320x240,1280x720"
DEFAULT_PLOT = Path("artifacts/benchmark/benchmark.png")
PRECISIONS = ("fp32", "fp16", "int8")
METHODS = ("edgepoint", "orb", "sift", "xfeat")
RUNTIMES = ("onnxruntime", "openvino", "torch")
IMAGE_COUNT = 8
MATCH_COUNT = 1000


@dataclass
class Entry:
    """One configuration being timed."""
    method: str
    config: ExtractorConfig
    model: object = None
    backend: str = ""
    precision: str = ""
    samples: dict = field(default_factory=dict)      # (w, h) -> [ms]
    keypoints: dict = field(default_factory=dict)    # (w, h) -> [count]
    stages: dict = field(default_factory=dict)       # (w, h) -> {stage: [ms]}

    @property
    def label(self) -> str:
        return f"{self.method} {self.backend} {self.precision}"


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        try:
            width, height = (int(v) for v in item.lower().strip().split("x"))
        except ValueError:
            raise ValueError(f"sizes must look like 640x480,320x240; got {item!r}") from None
        if width < 64 or height < 64:
            raise ValueError(f"image size {width}x{height} is too small (>= 64x64)")
        sizes.append((width, height))
    return sizes


def benchmark_images(count: int = IMAGE_COUNT) -> list[np.ndarray]:
    """Natural photographs from opencv-doc (benchmark images excluded), BGR."""
    data = opencv_sample_data_dir()
    names = sorted(p for p in data.glob("*") if p.suffix.lower() in (".jpg", ".png")
                   and not is_benchmark_image(p)) if data.is_dir() else []
    images = []
    for path in names:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None and min(image.shape[:2]) >= 300 and image.std() > 20:
            images.append(image)
        if len(images) == count:
            break
    if not images:
        raise FileNotFoundError(f"no test images in {data}; install Debian's opencv-doc")
    return images


def edgepoint_label(size: str, levels: int = 1, postprocess: str = "numpy") -> str:
    """The benchmark's name for an EdgePoint configuration: edgepoint-SIZE for the
    shipped weights of a size, edgepoint for --edgepoint-weights (size ""),
    -pyramidN appended for N pyramid levels, -graph for detection in the graph."""
    return ("edgepoint" + (f"-{size}" if size else "")
            + (f"-pyramid{levels}" if levels > 1 else "")
            + ("-graph" if postprocess == "graph" else ""))


def plan(args) -> list[Entry]:
    common = dict(max_keypoints=args.max_keypoints, num_threads=args.threads, fallback=False)
    entries = []
    methods = args.methods.split(",")
    if "edgepoint" in methods:
        pairs = list(AUTO_ORDER) + [("torch", "cpu"), ("torch", "cuda")]
        runtimes = args.runtimes.split(",")
        # given weights define the architecture: one size, named by the weights
        for size in [""] if args.edgepoint_weights else args.edgepoint_sizes.split(","):
            for runtime, device in (p for p in pairs if p[0] in runtimes):
                for precision in args.precisions.split(","):
                    for post in args.postprocess.split(","):
                        if post == "graph" and runtime == "torch":
                            continue    # the reference runtime runs no ONNX graph
                        entries.append(Entry(edgepoint_label(size, 1, post), ExtractorConfig(
                            model="edgepoint", model_size=size or "medium",
                            weights=args.edgepoint_weights, runtime=runtime, device=device,
                            precision=precision, postprocess=post, **common)))
            if args.pyramid_levels > 1:
                for precision in [p for p in args.precisions.split(",") if p in ("fp32", "int8")]:
                    entries.append(Entry(edgepoint_label(size, args.pyramid_levels),
                                         ExtractorConfig(
                        model="edgepoint", model_size=size or "medium",
                        weights=args.edgepoint_weights, precision=precision,
                        pyramid_levels=args.pyramid_levels, **common)))
    for name in ("orb", "sift"):
        if name in methods:
            entries.append(Entry(name, ExtractorConfig(model=name, **common)))
    if "xfeat" in methods:
        entries.append(Entry("xfeat", ExtractorConfig(model="xfeat", **common)))
    return entries


def build(entries: list[Entry], sizes, images, say) -> tuple[list[Entry], list[str]]:
    from ..models import create_model
    ready, skipped = [], []
    for entry in entries:
        c = entry.config
        what = f"{entry.method} {c.runtime}/{c.device}/{c.precision}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                entry.model = create_model(c)
            info = entry.model.runtime_info()
        except RuntimeUnavailable as exc:
            reason = exc.reasons[-1].split(": ", 1)[-1]
            skipped.append(f"{what}: {reason.splitlines()[0][:150]}")
            continue
        except (FileNotFoundError, ImportError) as exc:
            skipped.append(f"{what}: {first_line(exc, 150)}")
            continue
        entry.backend = f"{info.get('runtime', '?')}-{info.get('device', '?')}"
        entry.precision = info.get("precision", c.precision)
        if any(e.backend == entry.backend and e.precision == entry.precision
               and e.method == entry.method for e in ready):
            skipped.append(f"{what}: same as an earlier configuration")
            continue
        say(f"warming up {entry.label}")
        for width, height in sizes:
            frame = cv2.resize(images[0], (width, height), interpolation=cv2.INTER_AREA)
            for _ in range(3):
                entry.model.extract(frame)
        ready.append(entry)
    return ready, skipped


def time_round_robin(entries: list[Entry], sizes, images, repeats: int, block: int,
                     progress, rate: float = 0.0) -> None:
    frames = {size: [cv2.resize(image, size, interpolation=cv2.INTER_AREA) for image in images]
              for size in sizes}
    for entry in entries:
        for size in sizes:
            entry.samples[size], entry.keypoints[size], entry.stages[size] = [], [], {}
    for turn in range(-(-repeats // block)):
        # every configuration sees the same images in the same order
        order = [(turn * block + j) % len(images) for j in range(min(block, repeats - turn * block))]
        for size in sizes:
            for entry in entries:
                entry.model.extract(frames[size][order[-1]])  # settling frame, untimed
                tick = time.perf_counter()
                for index in order:
                    frame = frames[size][index]
                    if rate > 0:    # the next camera frame's arrival
                        tick += 1.0 / rate
                        time.sleep(max(0.0, tick - time.perf_counter()))
                    start = time.perf_counter()
                    features = entry.model.extract(frame)
                    elapsed = (time.perf_counter() - start) * 1e3
                    entry.samples[size].append(elapsed)
                    entry.keypoints[size].append(len(features))
                    for stage, ms in features.timings_ms.items():
                        entry.stages[size].setdefault(stage, []).append(ms)
                    progress.update(1)


def extraction_records(entries: list[Entry], sizes) -> list[dict]:
    records = []
    for size in sizes:
        orb = next((e for e in entries if e.method == "orb"), None)
        orb_median = float(np.median(orb.samples[size])) if orb else None
        for entry in entries:
            samples = np.asarray(entry.samples[size])
            median = float(np.median(samples))
            record = {
                "kind": "extraction", "method": entry.method, "backend": entry.backend,
                "precision": entry.precision, "width": size[0], "height": size[1],
                "median_ms": round(median, 3), "p90_ms": round(float(np.percentile(samples, 90)), 3),
                "keypoints": round(float(np.mean(entry.keypoints[size])), 1),
                "runs": int(len(samples)), "threads": entry.config.num_threads,
                "max_keypoints": entry.config.max_keypoints,
                "model_size": entry.config.model_size if entry.config.model == "edgepoint"
                else None,
                "pyramid_levels": entry.config.pyramid_levels,
                "stages_median_ms": {k: round(float(np.median(v)), 3)
                                     for k, v in entry.stages[size].items()},
                "time_vs_orb": round(median / orb_median, 3) if orb_median else None,
            }
            records.append(record)
    return records


def matching_records(repeats: int, count: int = MATCH_COUNT) -> list[dict]:
    """Mutual-NN matching of count x count descriptors: float, sign-binary, ORB-size binary."""
    from ..descriptors import binarize
    from ..matching import match_descriptors
    rng = np.random.default_rng(0)
    a = rng.standard_normal((count, 64)).astype(np.float32)
    # b: noisy copies of a (so there are true matches), unit length like the models'.
    b = a + 0.3 * rng.standard_normal(a.shape).astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    orb_a = rng.integers(0, 256, (count, 32), dtype=np.uint8)
    orb_b = orb_a ^ (rng.random((count, 32)) < 0.05).astype(np.uint8)
    cases = [("match-float32-64d", "float32", a, b),
             ("match-binary-64bit", "binary", binarize(a), binarize(b)),
             ("match-binary-256bit", "binary", orb_a, orb_b)]
    samples = {name: [] for name, *_ in cases}
    matched = {}
    for name, kind, da, db in cases:  # warm-up
        match_descriptors(da, db, descriptor_type=kind)
    for _ in range(repeats):
        for name, kind, da, db in cases:
            start = time.perf_counter()
            idx_a, _, _ = match_descriptors(da, db, descriptor_type=kind)
            samples[name].append((time.perf_counter() - start) * 1e3)
            matched[name] = len(idx_a)
    records = []
    for name, kind, da, _ in cases:
        values = np.asarray(samples[name])
        records.append({
            "kind": "matching", "method": name, "backend": "numpy",
            "precision": "uint8" if kind == "binary" else "fp32",
            "width": count, "height": count,  # descriptors in A x in B
            "median_ms": round(float(np.median(values)), 3),
            "p90_ms": round(float(np.percentile(values, 90)), 3),
            "keypoints": count, "matches": matched[name], "bytes_per_descriptor": int(da.nbytes // count),
            "runs": int(len(values))})
    return records


def format_table(records: list[dict]) -> str:
    lines = [f"{'method':<22} {'backend':<18} {'prec':<5} {'size':>9} {'median ms':>10} "
             f"{'p90 ms':>8} {'kpts':>6} {'pre':>6} {'net ms':>7} {'post':>6} {'x ORB':>6}"]
    for r in records:
        if r["kind"] != "extraction":
            continue
        stage = {k: r["stages_median_ms"].get(k, float("nan"))
                 for k in ("preprocess", "inference", "postprocess")}
        lines.append(
            f"{r['method']:<22} {r['backend']:<18} {r['precision']:<5} "
            f"{r['width']:>4}x{r['height']:<4} {r['median_ms']:>10.1f} {r['p90_ms']:>8.1f} "
            f"{r['keypoints']:>6.0f} {stage['preprocess']:>6.1f} {stage['inference']:>7.1f} "
            f"{stage['postprocess']:>6.1f} "
            f"{r['time_vs_orb'] if r['time_vs_orb'] is not None else float('nan'):>6.2f}"
            + ("" if r["keypoints"] >= 0.95 * r["max_keypoints"] else
               f"  < 95 % of {r['max_keypoints']} keypoints"))
    lines.append("")
    lines.append(f"{'matching (mutual NN)':<24} {'bytes/desc':>10} {'median ms':>10} {'p90 ms':>8}"
                 f" {'matches':>8}")
    for r in records:
        if r["kind"] == "matching":
            lines.append(f"{r['method'] + ' ' + str(r['width']) + 'x' + str(r['height']):<24} "
                         f"{r['bytes_per_descriptor']:>10} {r['median_ms']:>10.2f} "
                         f"{r['p90_ms']:>8.2f} {r['matches']:>8}")
    return "\n".join(lines)


def best_edgepoint(records: list[dict], size=(640, 480)) -> dict | None:
    candidates = [r for r in records if r["kind"] == "extraction"
                  and r["method"].startswith("edgepoint") and r["pyramid_levels"] == 1
                  and (r["width"], r["height"]) == size]
    return min(candidates, key=lambda r: r["median_ms"]) if candidates else None


def save_plot(records: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    extraction = [r for r in records if r["kind"] == "extraction"]
    sizes = sorted({(r["width"], r["height"]) for r in extraction}, key=lambda s: s[0] * s[1])
    labels = list(dict.fromkeys(f"{r['method']} {r['backend']} {r['precision']}"
                                for r in extraction))
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(labels) * max(1, len(sizes)) + 1.5))
    height = 0.8 / max(1, len(sizes))
    for index, size in enumerate(sizes):
        rows = {f"{r['method']} {r['backend']} {r['precision']}": r for r in extraction
                if (r["width"], r["height"]) == size}
        ys = [i + index * height for i, label in enumerate(labels) if label in rows]
        medians = [rows[label]["median_ms"] for label in labels if label in rows]
        p90 = [rows[label]["p90_ms"] - rows[label]["median_ms"] for label in labels
               if label in rows]
        ax.barh(ys, medians, height=height, xerr=[np.zeros(len(p90)), p90],
                label=f"{size[0]}x{size[1]}", capsize=2)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(labels))], labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("ms per image, median (bar) to p90 (whisker), log scale")
    ax.set_title("Feature extraction, whole pipeline (edgepoint_ros benchmark)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def machine_summary(threads: int) -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"{threads} threads per method, load average {load[0]:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="WxH list (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per configuration "
                        "and size (default %(default)s)")
    parser.add_argument("--block", type=int, default=3, help="timed frames per turn, after "
                        "one settling frame (default %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per method "
                        "(default %(default)s)")
    parser.add_argument("--max-keypoints", type=int, default=1000)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--precisions", default=",".join(PRECISIONS),
                        help="EdgePoint precisions (default %(default)s)")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES),
                        help="EdgePoint runtimes (default %(default)s)")
    parser.add_argument("--edgepoint-sizes", default=",".join(EDGEPOINT_SIZES),
                        help="EdgePoint sizes (default %(default)s)")
    parser.add_argument("--postprocess", default="numpy",
                        help="EdgePoint detection: numpy and/or graph (default %(default)s)")
    parser.add_argument("--rate", type=float, default=30.0,
                        help="camera rate in Hz that paces the timed frames; 0 = back to "
                             "back (default %(default)s)")
    parser.add_argument("--edgepoint-weights", default="",
                        help="EdgePoint weights (.onnx/.pt); default: the shipped ones")
    parser.add_argument("--pyramid-levels", type=int, default=3,
                        help="also time EdgePoint on this many pyramid levels (auto runtime, "
                        "fp32 and int8); 1 = not (default %(default)s)")
    parser.add_argument("--json", type=Path, default=None, help="write the records here")
    parser.add_argument("--plot", type=Path, default=DEFAULT_PLOT)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        sizes = parse_sizes(args.sizes)
        if (min(args.repeats, args.block, args.max_keypoints) < 1 or args.threads < 0
                or not 0 <= args.rate <= 1000):
            raise ValueError("--repeats, --block and --max-keypoints must be >= 1, "
                             "--threads >= 0, --rate in [0, 1000]")
        if not 1 <= args.pyramid_levels <= MAX_PYRAMID_LEVELS:
            raise ValueError(f"--pyramid-levels must be in [1, {MAX_PYRAMID_LEVELS}]; got "
                             f"{args.pyramid_levels}")
        for option, value, known in (("precisions", args.precisions, PRECISIONS),
                                     ("methods", args.methods, METHODS),
                                     ("runtimes", args.runtimes, RUNTIMES),
                                     ("edgepoint-sizes", args.edgepoint_sizes, EDGEPOINT_SIZES),
                                     ("postprocess", args.postprocess, POSTPROCESS)):
            unknown = set(value.split(",")) - set(known)
            if unknown:
                raise ValueError(f"unknown {option} {sorted(unknown)}; known: {', '.join(known)}")
        images = benchmark_images()
    except (ValueError, FileNotFoundError) as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 2
    from tqdm import tqdm

    def say(message: str) -> None:
        if not args.no_progress:
            tqdm.write(message, file=sys.stderr)

    cv2.setNumThreads(args.threads)
    print(f"benchmark: {machine_summary(args.threads)}", flush=True)
    entries, skipped = build(plan(args), sizes, images, say)
    if not entries:
        print("benchmark: nothing could run:\n  " + "\n  ".join(skipped), file=sys.stderr)
        return 1
    with tqdm(total=args.repeats * len(sizes) * len(entries), desc="timing", unit="run",
              disable=args.no_progress, file=sys.stderr) as progress:
        time_round_robin(entries, sizes, images, args.repeats, args.block, progress, args.rate)
    records = extraction_records(entries, sizes) + matching_records(args.repeats)
    print(format_table(records))
    if skipped:
        print("\nskipped (cannot run here):\n  " + "\n  ".join(skipped))
    best = best_edgepoint(records)
    if best:
        print(f"\nfastest EdgePoint at 640x480: {best['backend']} {best['precision']}, "
              f"median {best['median_ms']:.1f} ms, p90 {best['p90_ms']:.1f} ms "
              f"({best['time_vs_orb']}x ORB's time)")
    print(f"machine after the run: {machine_summary(args.threads)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(records, indent=1))
        print(f"records: {args.json}")
    save_plot(records, args.plot)
    print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
