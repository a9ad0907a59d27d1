"""Frame-to-frame evaluation over an image sequence: the VSLAM metrics of the seed report.

`../shared/seeds/superpoint-vslam-edge-report-zh.md`, section 4.1, compares
feature extractors on video sequences without ground truth, frame t against
frame t-1. Per frame and per method:

* ``num_kp``: keypoints of the current frame;
* ``match_prec``: matches with the previous frame / keypoints of the current
  frame; 0 when the current frame has no keypoints (higher is better);
* ``outlier_prec``: matches rejected by a RANSAC fundamental matrix / matches;
  1 when there is no match (lower is better). RANSAC is OpenCV's F-RANSAC
  with the report's ``f_rej_th`` = 5 px point-to-epipolar-line threshold
  (`geometry.verify_matches`, confidence 0.99 and 1000 iterations, OpenCV's
  defaults). With fewer than 8 matches no F can be estimated and every match
  counts as an outlier (nothing was verified);
* ``inliers``: matches F-RANSAC verified;
* ``extract_ms``: wall-clock time of `model.extract` (pre-processing,
  inference, post-processing; the report's timing), and ``match_ms`` for
  matching + RANSAC. The first frame is extracted once untimed to warm up.

Matching, each in one run so all methods see the same frames:

* ``ratio``: the report's matcher: nearest neighbour in the previous frame for
  each current keypoint, kept when nearest < 0.7 x second nearest (Lowe's
  ratio test, OpenCV tutorial style; no mutual check). Distances are L2 for
  float descriptors and Hamming for binary ones (ORB), as OpenCV would match
  them;
* ``mnn``: mutual nearest neighbours, no ratio test.

The first frame of a sequence has no previous frame: its record has num_kp
and extract_ms, and NaN for the matching metrics, which the summary skips.

Sources (`iter_sequence`): a directory of images (sorted by file name), a
video file (OpenCV), or a ROS 2 bag (`bags.iter_bag_images`). Frames can be
resized to a fixed size (the report used 320x240) and subsampled.

Outputs (`write_outputs`): per-frame records (CSV), the summary (mean and
median per method and matcher; JSON with the settings, and CSV), and per-frame
plots like the report's: match_prec and outlier_prec vs frame (one line per
method and matcher), num_kp and extract time vs frame (one line per method).
"""
from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..geometry import verify_matches
from ..matching import match_descriptors

F_REJ_TH = 5.0
RATIO = 0.7
RANSAC_CONFIDENCE = 0.99
RANSAC_MAX_ITERS = 1000
MATCHERS = {"ratio": {"mutual": False, "ratio": RATIO}, "mnn": {"mutual": True, "ratio": 0.0}}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v")
BAG_EXTENSIONS = (".mcap", ".db3")
METRICS = ("num_kp", "match_prec", "outlier_prec", "inliers", "matches", "extract_ms", "match_ms")


@dataclass
class FrameRecord:
    method: str
    matcher: str
    frame: int
    num_kp: int
    matches: float = math.nan
    inliers: float = math.nan
    match_prec: float = math.nan
    outlier_prec: float = math.nan
    extract_ms: float = math.nan
    match_ms: float = math.nan


@dataclass
class SequenceResult:
    name: str
    frames: int
    records: list[FrameRecord]
    settings: dict = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)   # method -> why it did not run

    def summary(self) -> list[dict]:
        """One row per (method, matcher): mean and median of every metric over
        the frames where it is defined."""
        rows = []
        keys = sorted({(r.method, r.matcher) for r in self.records},
                      key=lambda k: (self._order("methods", k[0]), self._order("matchers", k[1])))
        for method, matcher in keys:
            chosen = [r for r in self.records if r.method == method and r.matcher == matcher]
            row = {"method": method, "matcher": matcher,
                   "frames": sum(not math.isnan(r.match_prec) for r in chosen)}
            for metric in METRICS:
                values = np.array([getattr(r, metric) for r in chosen], float)
                values = values[~np.isnan(values)]
                row[f"{metric}_mean"] = float(values.mean()) if len(values) else math.nan
                row[f"{metric}_median"] = float(np.median(values)) if len(values) else math.nan
            rows.append(row)
        return rows

    def _order(self, setting: str, value: str) -> tuple[int, str]:
        listed = self.settings.get(setting, [])
        return (listed.index(value) if value in listed else len(listed), value)


def evaluate_sequence(frames: Iterable[np.ndarray], models: dict, *,
                      matchers: Iterable[str] = ("ratio", "mnn"), f_rej_th: float = F_REJ_TH,
                      name: str = "sequence", progress=None) -> SequenceResult:
    """Run every model on every frame and match each frame with the previous one.

    models: {label: FeatureModel}. progress: optional callable(frame_index)
    called after each frame.
    """
    matchers = tuple(matchers)
    unknown = [m for m in matchers if m not in MATCHERS]
    if unknown or not matchers:
        raise ValueError(f"matchers must be a non-empty subset of {', '.join(MATCHERS)}; "
                         f"got {', '.join(matchers) or 'none'}")
    if not models:
        raise ValueError("no models to evaluate")
    if not float(f_rej_th) > 0:
        raise ValueError(f"f_rej_th must be > 0 pixels; got {f_rej_th}")
    previous = {label: None for label in models}
    records: list[FrameRecord] = []
    count = 0
    for index, image in enumerate(frames):
        for label, model in models.items():
            if index == 0:
                model.extract(image)   # warm-up, untimed
            started = time.perf_counter()
            features = model.extract(image)
            extract_ms = (time.perf_counter() - started) * 1e3
            for matcher in matchers:
                record = FrameRecord(label, matcher, index, len(features), extract_ms=extract_ms)
                if previous[label] is not None:
                    _match_and_verify(record, previous[label], features, matcher, f_rej_th)
                records.append(record)
            previous[label] = features
        count += 1
        if progress is not None:
            progress(index)
    if count == 0:
        raise ValueError("the sequence has no frames")
    settings = {"methods": list(models), "matchers": list(matchers), "ratio": RATIO,
                "f_rej_th": float(f_rej_th), "ransac_confidence": RANSAC_CONFIDENCE,
                "ransac_max_iters": RANSAC_MAX_ITERS}
    return SequenceResult(name, count, records, settings)


def _match_and_verify(record: FrameRecord, reference, current, matcher: str,
                      f_rej_th: float) -> None:
    started = time.perf_counter()
    if len(current) and len(reference):
        cur_idx, ref_idx, _ = match_descriptors(current.descriptors, reference.descriptors,
                                                descriptor_type=current.descriptor_type,
                                                **MATCHERS[matcher])
    else:
        cur_idx = ref_idx = np.zeros(0, np.int64)
    verification = verify_matches(reference.keypoints[ref_idx], current.keypoints[cur_idx],
                                  method="fundamental", threshold_px=f_rej_th,
                                  confidence=RANSAC_CONFIDENCE, max_iters=RANSAC_MAX_ITERS)
    record.match_ms = (time.perf_counter() - started) * 1e3
    matches = len(cur_idx)
    record.matches = matches
    record.inliers = verification.num_inliers
    record.match_prec = matches / record.num_kp if record.num_kp else 0.0
    record.outlier_prec = (matches - verification.num_inliers) / matches if matches else 1.0


# -- sources -------------------------------------------------------------------

def sequence_kind(source: Path | str) -> str:
    """"images" | "video" | "bag" for a path, or a ValueError saying why not."""
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"sequence not found: {path}")
    if path.is_dir():
        if (path / "metadata.yaml").is_file():
            return "bag"
        return "images"
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in BAG_EXTENSIONS:
        return "bag"
    raise ValueError(f"{path} is neither a directory of images, a video "
                     f"({', '.join(VIDEO_EXTENSIONS)}) nor a bag ({', '.join(BAG_EXTENSIONS)} "
                     "or a rosbag2 directory)")


def iter_sequence(source: Path | str, *, width: int = 0, height: int = 0, max_frames: int = 0,
                  stride: int = 1, start: int = 0, image_topic: str | None = None
                  ) -> Iterator[np.ndarray]:
    """Frames of a directory of images, a video or a bag (BGR or grey uint8),
    every `stride`-th from `start`, at most max_frames (0 = all), resized to
    width x height when both are > 0."""
    import cv2

    if stride < 1 or start < 0 or max_frames < 0:
        raise ValueError(f"need stride >= 1, start >= 0, max_frames >= 0; got stride {stride}, "
                         f"start {start}, max_frames {max_frames}")
    if (width > 0) != (height > 0):
        raise ValueError(f"width and height must be both 0 (native size) or both > 0; "
                         f"got {width}x{height}")
    kind = sequence_kind(source)
    if kind == "images":
        raw = _iter_image_files(Path(source))
    elif kind == "video":
        raw = _iter_video(Path(source))
    else:
        from ..bags import iter_bag_images
        raw = (frame.image for frame in iter_bag_images(source, image_topic))
    emitted = 0
    for index, image in enumerate(raw):
        if index < start or (index - start) % stride:
            continue
        if width > 0 and image.shape[:2] != (height, width):
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        yield image
        emitted += 1
        if max_frames and emitted >= max_frames:
            return


def _iter_image_files(directory: Path) -> Iterator[np.ndarray]:
    import cv2

    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {directory}")
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"cannot read image {path}")
        yield image


def _iter_video(path: Path) -> Iterator[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"cannot open video {path}")
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield frame
    finally:
        capture.release()


# -- outputs -------------------------------------------------------------------

def format_summary(result: SequenceResult) -> str:
    """The summary as a fixed-width text table."""
    header = (f"{'method':<10} {'matcher':<7} {'frames':>6} {'num_kp':>13} "
              f"{'match_prec':>15} {'outlier_prec':>15} {'inliers':>13} {'extract_ms':>13}")
    lines = [f"{result.name}: {result.frames} frames; mean / median per frame "
             f"(f_rej_th {result.settings.get('f_rej_th')} px, ratio {RATIO})", header,
             "-" * len(header)]
    for row in result.summary():
        def pair(metric, fmt):
            return (f"{format(row[metric + '_mean'], fmt)} / "
                    f"{format(row[metric + '_median'], fmt)}")
        lines.append(f"{row['method']:<10} {row['matcher']:<7} {row['frames']:>6} "
                     f"{pair('num_kp', '.0f'):>13} {pair('match_prec', '.3f'):>15} "
                     f"{pair('outlier_prec', '.3f'):>15} {pair('inliers', '.0f'):>13} "
                     f"{pair('extract_ms', '.1f'):>13}")
    for method, reason in result.skipped.items():
        lines.append(f"{method}: not evaluated ({reason})")
    return "\n".join(lines)


def write_outputs(result: SequenceResult, out_dir: Path | str) -> dict[str, Path]:
    """Write records.csv, summary.csv, summary.json and the plots; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"records": out / "records.csv", "summary_csv": out / "summary.csv",
             "summary_json": out / "summary.json"}
    with open(paths["records"], "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(result.records[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in result.records)
    summary = result.summary()
    with open(paths["summary_csv"], "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    document = {"sequence": result.name, "frames": result.frames, "settings": result.settings,
                "skipped": result.skipped, "summary": summary}
    paths["summary_json"].write_text(json.dumps(document, indent=2, allow_nan=True, default=str) + "\n")
    paths.update(_plots(result, out))
    return paths


def _plots(result: SequenceResult, out: Path) -> dict[str, Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = result.settings.get("methods") or sorted({r.method for r in result.records})
    matchers = result.settings.get("matchers") or sorted({r.matcher for r in result.records})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = {"ratio": "-", "mnn": "--"}
    plots = {}
    per_matcher = (("match_prec", "match_prec (higher is better)"),
                   ("outlier_prec", "outlier_prec (lower is better)"))
    per_method = (("num_kp", "num_kp"), ("extract_ms", "extract time per frame (ms)"))
    for metric, title in per_matcher + per_method:
        fig, ax = plt.subplots(figsize=(10, 4))
        for m_index, method in enumerate(methods):
            for matcher in (matchers if metric in dict(per_matcher) else matchers[:1]):
                rows = [r for r in result.records if r.method == method and r.matcher == matcher]
                label = f"{method} ({matcher})" if metric in dict(per_matcher) else method
                ax.plot([r.frame for r in rows], [getattr(r, metric) for r in rows],
                        styles.get(matcher, "-"), color=colours[m_index % len(colours)],
                        linewidth=1.0, label=label)
        ax.set_title(f"{result.name}: {title}")
        ax.set_xlabel("frame")
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, ncol=2)
        fig.tight_layout()
        path = out / f"{result.name}-{metric}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        plots[f"plot_{metric}"] = path
    return plots
