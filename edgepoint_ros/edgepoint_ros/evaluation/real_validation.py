"""The real-data validation set: real multi-view images with ground truth, for
choosing checkpoints and settings (never Oxford, which is only reported).

Three groups, each scored by correct matches per keypoint:

* **disparity** (exact ground truth, rectified stereo): opencv-doc's
  `aloeL.jpg` / `aloeR.jpg` with `aloeGT.png` (Middlebury 2006 Aloe,
  1282x1110, used at half size 641x555), and scikit-image's
  `motorcycle_left/right.png` with `motorcycle_disp.npz` (Middlebury 2014
  Motorcycle, 741x500; the files ship inside the scikit-image wheel, which
  `scripts/setup.sh` installs without its dependencies: only the files are
  read, skimage is never imported). Both maps are left-view disparities in
  pixels: the left pixel (x, y) is the right pixel (x - d(x, y), y). Found by
  correlating 11x11 patches over the scale and sign of d (`disparity_ncc`):
  aloeGT's PNG value is d itself (median NCC 0.94 at x 1, 0.02 at x -1,
  below 0.03 at x 1/3, 1/2, 2, 3; zero = unknown), the motorcycle's is d in
  float32 (inf = unknown; NCC 0.96). The correlation peaks within 0.5 px of
  the map in x and at 0 in y. A match (xl, yl) -> (xr, yr) is correct at t px
  when |xr - (xl - d)| <= t and |yr - yl| <= t, d taken at the left keypoint's
  nearest pixel. For aloe at half size d is the mean of a 2x2 block of the
  full map, halved, where the block is complete and spans at most 1 px (depth
  edges stay unknown). A left keypoint is *judged* when d is known there and
  x - d falls inside the right image; others are left out of both the
  keypoint count and the precision.
* **epipolar** (weaker ground truth): opencv-doc's 13 chessboard stereo pairs
  `left01..14.jpg` / `right01..14.jpg` (no 10; 640x480), one fixed rig. The
  rig is calibrated here with OpenCV (9x6 inner corners,
  `cv2.calibrateCamera` per camera, then `cv2.stereoCalibrate` with the
  intrinsics fixed: stereo RMS 0.45 px; 99 % of the corners within 0.75 px
  of their epipolar lines). A match is correct at t px when its symmetric
  epipolar distance (the larger of the two point-to-epipolar-line distances,
  on lens-undistorted pixels) is <= t *and* its rectified disparity is
  plausible (between -t and 1.5x the largest disparity of the board's
  corners: in front of both cameras, no nearer than the board ever comes).
  This is weaker than a disparity check: a wrong match anywhere along the
  epipolar line passes, and the rig's epipolar lines run along the image rows,
  i.e. along the board's rows of identical corners; a random pair of points
  passes at 3 px 1.2 % of the time.
* **video** (no ground truth): the seed report's frame-to-frame metrics
  (`sequence.py`: mutual NN, F-RANSAC 5 px) on the choosing videos
  CHOOSING_VIDEOS (opencv-doc's Megamind.avi, a moving camera; vtest.avi, a
  static street camera with pedestrians) resized to 640x480. The group's
  score is F-verified matches per keypoint, match_prec x (1 - outlier_prec)
  per frame. REPORTING_ONLY_VIDEOS (tree.avi) are never used for choosing.

Per method and group: precision at 1/3/5 px (correct / judged matches,
pooled over the group's pairs), correct matches per pair, the matching score
MS@3 (correct matches at 3 px / judged left keypoints, pooled), keypoints
per image; for video match_prec and outlier_prec (means over frames) and
verified matches per keypoint.

**Score** = the mean of the groups' scores (disparity MS@3, epipolar MS@3,
video verified matches per keypoint), each group weighing the same.

**Noise**: a paired, stratified bootstrap (`RESAMPLES` resamples, fixed seed)
over units: a disparity pair's left image is cut into TILES cells (one unit
each: two pairs are too few to resample), a chessboard pair is one unit, and
VIDEO_BLOCK consecutive frame pairs of a video are one unit (neighbouring
frames are not independent). Each group is resampled on its own, with the
same draws for every method, so the spread of a *difference* between two
methods is measured on the same images: `ranking` gives, for each method and
the next one down, the bootstrap probability that it scores higher; at
>= 0.95 the order is beyond the set's noise. What the set cannot tell:
rotation, zoom and strong viewpoint change (stereo rigs and frame-to-frame
video have none of them); the synthetic held-out set (`validation_set.py`)
covers those.
"""
from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..config import MODELS
from ..features import Features
from ..matching import match_features
from ..paths import opencv_sample_data_dir

THRESHOLDS = (1, 3, 5)
SCORE_PX = 3
GROUPS = ("disparity", "epipolar", "video")
TILES = (4, 4)                  # columns, rows of a disparity pair's units
VIDEO_BLOCK = 10                # consecutive frame pairs per video unit
VIDEO_SIZE = (640, 480)
RESAMPLES = 2000
BEYOND_NOISE = 0.95
# video file -> frames used (iter_sequence's stride and max_frames; 0 = all)
CHOOSING_VIDEOS: dict[str, dict] = {"Megamind.avi": {"stride": 1, "max_frames": 0},
                                    "vtest.avi": {"stride": 2, "max_frames": 150}}
REPORTING_ONLY_VIDEOS = ("tree.avi",)
BOARD = (9, 6)                  # inner corners of opencv-doc's chessboard
CHESSBOARD_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14)
ALOE_SCALE = 0.5
DISPARITY_MARGIN = 1.5          # plausible rectified disparity: up to this x the board's largest
# The extraction settings of every method here (fields of ExtractorConfig):
# what a node runs (1000 keypoints, one level, threshold 0, NMS radius 2)
# in FP32, so the set compares weights, not quantisation (`--set M.precision=int8`).
VALIDATION_SETTINGS: dict[str, dict] = {
    model: {"max_keypoints": 1000, "pyramid_levels": 1, "precision": "fp32"} for model in MODELS}


# -- ground truth --------------------------------------------------------------

class DisparityTruth:
    """Left-view disparity d (pixels, NaN unknown): left (x, y) is right (x - d, y)."""

    kind = "disparity"

    def __init__(self, disparity: np.ndarray, right_width: int):
        self.disparity = np.asarray(disparity, np.float64)
        self.right_width = int(right_width)

    def _lookup(self, points: np.ndarray) -> np.ndarray:
        h, w = self.disparity.shape
        ix = np.clip(np.rint(points[:, 0]).astype(np.int64), 0, w - 1)
        iy = np.clip(np.rint(points[:, 1]).astype(np.int64), 0, h - 1)
        return self.disparity[iy, ix]

    def defined(self, points_left: np.ndarray) -> np.ndarray:
        """Left keypoints whose correspondence is known and inside the right image."""
        points_left = np.asarray(points_left, np.float64).reshape(-1, 2)
        target = points_left[:, 0] - self._lookup(points_left)
        return np.isfinite(target) & (target >= -0.5) & (target <= self.right_width - 0.5)

    def errors(self, points_left: np.ndarray, points_right: np.ndarray) -> np.ndarray:
        """max(|xr - (xl - d)|, |yr - yl|) per match; NaN where not judged."""
        points_left = np.asarray(points_left, np.float64).reshape(-1, 2)
        points_right = np.asarray(points_right, np.float64).reshape(-1, 2)
        dx = np.abs(points_right[:, 0] - (points_left[:, 0] - self._lookup(points_left)))
        error = np.maximum(dx, np.abs(points_right[:, 1] - points_left[:, 1]))
        error[~self.defined(points_left)] = np.nan
        return error

    def correspondences(self, points_left: np.ndarray) -> np.ndarray:
        """The right-image points of left points (NaN where unknown)."""
        points_left = np.asarray(points_left, np.float64).reshape(-1, 2)
        out = points_left.copy()
        out[:, 0] -= self._lookup(points_left)
        out[~self.defined(points_left)] = np.nan
        return out


@dataclass
class StereoCalibration:
    """The chessboard rig (left camera 1, right camera 2), from `calibrate_chessboard_rig`."""
    image_size: tuple[int, int]
    K1: np.ndarray
    D1: np.ndarray
    K2: np.ndarray
    D2: np.ndarray
    R: np.ndarray
    T: np.ndarray
    F: np.ndarray               # on undistorted pixels: x2^T F x1 = 0
    rms: float                  # stereoCalibrate's RMS reprojection error, px
    mono_rms: tuple[float, float]
    R1: np.ndarray
    R2: np.ndarray
    P1: np.ndarray
    P2: np.ndarray
    corners_left: list = field(repr=False, default_factory=list)    # per pair, (54, 2)
    corners_right: list = field(repr=False, default_factory=list)
    max_disparity: float = 0.0  # largest rectified disparity of a board corner

    def undistort(self, points: np.ndarray, camera: int) -> np.ndarray:
        K, D = (self.K1, self.D1) if camera == 1 else (self.K2, self.D2)
        points = np.asarray(points, np.float64).reshape(-1, 1, 2)
        if not len(points):
            return np.zeros((0, 2))
        return cv2.undistortPoints(points, K, D, P=K).reshape(-1, 2)

    def rectify(self, points: np.ndarray, camera: int) -> np.ndarray:
        K, D, Rr, P = ((self.K1, self.D1, self.R1, self.P1) if camera == 1
                       else (self.K2, self.D2, self.R2, self.P2))
        points = np.asarray(points, np.float64).reshape(-1, 1, 2)
        if not len(points):
            return np.zeros((0, 2))
        return cv2.undistortPoints(points, K, D, R=Rr, P=P).reshape(-1, 2)

    def epipolar_distances(self, points_left: np.ndarray, points_right: np.ndarray
                           ) -> np.ndarray:
        """Symmetric epipolar distance: the larger of the two point-to-line distances."""
        left = self.undistort(points_left, 1)
        right = self.undistort(points_right, 2)
        hl = np.c_[left, np.ones(len(left))]
        hr = np.c_[right, np.ones(len(right))]
        lines_right = hl @ self.F.T          # epipolar lines of left points in the right image
        lines_left = hr @ self.F
        d_right = np.abs((lines_right * hr).sum(1)) / np.hypot(lines_right[:, 0], lines_right[:, 1])
        d_left = np.abs((lines_left * hl).sum(1)) / np.hypot(lines_left[:, 0], lines_left[:, 1])
        return np.maximum(d_left, d_right)

    def rectified_disparities(self, points_left: np.ndarray, points_right: np.ndarray
                              ) -> np.ndarray:
        return self.rectify(points_left, 1)[:, 0] - self.rectify(points_right, 2)[:, 0]


class EpipolarTruth:
    """A chessboard pair judged by the calibrated rig's epipolar geometry."""

    kind = "epipolar"

    def __init__(self, calibration: StereoCalibration):
        self.calibration = calibration

    def defined(self, points_left: np.ndarray) -> np.ndarray:
        return np.ones(len(np.asarray(points_left).reshape(-1, 2)), bool)

    def errors(self, points_left: np.ndarray, points_right: np.ndarray) -> np.ndarray:
        """Symmetric epipolar distance; inf where the rectified disparity is implausible."""
        cal = self.calibration
        if not len(np.asarray(points_left).reshape(-1, 2)):
            return np.zeros(0)
        error = cal.epipolar_distances(points_left, points_right)
        disparity = cal.rectified_disparities(points_left, points_right)
        plausible = (disparity >= -error) & (disparity <= DISPARITY_MARGIN * cal.max_disparity)
        error[~plausible] = np.inf
        return error


@dataclass
class StereoPair:
    name: str
    group: str                  # "disparity" | "epipolar"
    left: np.ndarray            # BGR uint8
    right: np.ndarray
    truth: object               # DisparityTruth | EpipolarTruth
    tiles: tuple[int, int] = (1, 1)


# -- the pairs -----------------------------------------------------------------

def read_bgr(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return image


def aloe_pair(data_dir: Path | None = None, scale: float = ALOE_SCALE) -> StereoPair:
    """opencv-doc's aloe pair at `scale` (1 or 1/2) with its disparity."""
    data_dir = Path(data_dir or opencv_sample_data_dir())
    left, right = read_bgr(data_dir / "aloeL.jpg"), read_bgr(data_dir / "aloeR.jpg")
    gt = cv2.imread(str(data_dir / "aloeGT.png"), cv2.IMREAD_UNCHANGED)
    if gt is None:
        raise FileNotFoundError(f"cannot read {data_dir / 'aloeGT.png'}")
    disparity = gt.astype(np.float64)
    disparity[gt == 0] = np.nan
    if scale == 0.5:
        h, w = (disparity.shape[0] // 2) * 2, (disparity.shape[1] // 2) * 2
        blocks = disparity[:h, :w].reshape(h // 2, 2, w // 2, 2).transpose(0, 2, 1, 3)
        blocks = blocks.reshape(h // 2, w // 2, 4)
        spread = blocks.max(axis=2) - blocks.min(axis=2)     # NaN when a pixel is unknown
        disparity = np.where(spread <= 1.0, blocks.mean(axis=2) / 2.0, np.nan)
        size = (w // 2, h // 2)
        left = cv2.resize(left[:h, :w], size, interpolation=cv2.INTER_AREA)
        right = cv2.resize(right[:h, :w], size, interpolation=cv2.INTER_AREA)
    elif scale != 1.0:
        raise ValueError(f"aloe is used at scale 1 or 0.5; got {scale}")
    return StereoPair("aloe", "disparity", left, right,
                      DisparityTruth(disparity, right.shape[1]), TILES)


def skimage_data_dir() -> Path:
    """The data folder inside the installed scikit-image wheel (not imported)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-image is not installed (scripts/setup.sh installs it "
                                "for the motorcycle stereo pair)")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def motorcycle_pair(data_dir: Path | None = None) -> StereoPair:
    """scikit-image's motorcycle pair (`skimage.data.stereo_motorcycle`'s files)."""
    data_dir = Path(data_dir) if data_dir else skimage_data_dir()
    left = read_bgr(data_dir / "motorcycle_left.png")
    right = read_bgr(data_dir / "motorcycle_right.png")
    path = data_dir / "motorcycle_disp.npz"
    if not path.is_file():
        raise FileNotFoundError(f"motorcycle disparity missing: {path}")
    with np.load(path) as archive:
        disparity = np.asarray(archive[archive.files[0]], np.float64)
    disparity[~np.isfinite(disparity)] = np.nan
    return StereoPair("motorcycle", "disparity", left, right,
                      DisparityTruth(disparity, right.shape[1]), TILES)


@functools.lru_cache(maxsize=4)
def calibrate_chessboard_rig(data_dir: str | None = None) -> StereoCalibration:
    """Calibrate opencv-doc's stereo rig from its 13 chessboard pairs."""
    data_dir = Path(data_dir or opencv_sample_data_dir())
    board = np.zeros((BOARD[0] * BOARD[1], 3), np.float32)
    board[:, :2] = np.mgrid[0:BOARD[0], 0:BOARD[1]].T.reshape(-1, 2)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 0.01)
    objects, lefts, rights, size = [], [], [], None
    for index in CHESSBOARD_IDS:
        grey = []
        for side in ("left", "right"):
            image = cv2.imread(str(data_dir / f"{side}{index:02d}.jpg"), cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise FileNotFoundError(f"cannot read {data_dir / f'{side}{index:02d}.jpg'}")
            grey.append(image)
        size = (grey[0].shape[1], grey[0].shape[0])
        found = [cv2.findChessboardCorners(image, BOARD) for image in grey]
        if not all(ok for ok, _ in found):
            raise ValueError(f"chessboard {BOARD[0]}x{BOARD[1]} not found in pair {index:02d}")
        corners = [cv2.cornerSubPix(image, c, (11, 11), (-1, -1), criteria)
                   for image, (_, c) in zip(grey, found)]
        objects.append(board)
        lefts.append(corners[0])
        rights.append(corners[1])
    rms1, K1, D1, _, _ = cv2.calibrateCamera(objects, lefts, size, None, None)
    rms2, K2, D2, _, _ = cv2.calibrateCamera(objects, rights, size, None, None)
    rms, K1, D1, K2, D2, R, T, _, F = cv2.stereoCalibrate(
        objects, lefts, rights, K1, D1, K2, D2, size, flags=cv2.CALIB_FIX_INTRINSIC)
    R1, R2, P1, P2, *_ = cv2.stereoRectify(K1, D1, K2, D2, size, R, T, alpha=0)
    calibration = StereoCalibration(size, K1, D1, K2, D2, R, T, F, float(rms),
                                    (float(rms1), float(rms2)), R1, R2, P1, P2,
                                    [c.reshape(-1, 2) for c in lefts],
                                    [c.reshape(-1, 2) for c in rights])
    calibration.max_disparity = float(max(
        calibration.rectified_disparities(a, b).max()
        for a, b in zip(calibration.corners_left, calibration.corners_right)))
    return calibration


def chessboard_pairs(data_dir: Path | None = None) -> list[StereoPair]:
    data_dir = Path(data_dir or opencv_sample_data_dir())
    truth = EpipolarTruth(calibrate_chessboard_rig(str(data_dir)))
    return [StereoPair(f"chessboard-{i:02d}", "epipolar", read_bgr(data_dir / f"left{i:02d}.jpg"),
                       read_bgr(data_dir / f"right{i:02d}.jpg"), truth)
            for i in CHESSBOARD_IDS]


STEREO_SOURCES: dict[str, Callable[[], list[StereoPair]]] = {
    "aloe": lambda: [aloe_pair()],
    "motorcycle": lambda: [motorcycle_pair()],
    "chessboard": lambda: chessboard_pairs(),
}


def load_stereo_pairs(sources=tuple(STEREO_SOURCES)) -> tuple[list[StereoPair], dict[str, str]]:
    """The stereo pairs of `sources` (names of STEREO_SOURCES), and the sources
    that could not be read with the reason."""
    pairs, missing = [], {}
    for name in sources:
        if name not in STEREO_SOURCES:
            raise ValueError(f"unknown stereo source {name!r}; known: {', '.join(STEREO_SOURCES)}")
        try:
            pairs += STEREO_SOURCES[name]()
        except (FileNotFoundError, ValueError) as exc:
            missing[name] = str(exc)
    return pairs, missing


def disparity_ncc(pair: StereoPair, scale: float = 1.0, sign: float = 1.0, samples: int = 500,
                  seed: int = 0, half: int = 5) -> float:
    """Median NCC of 11x11 left patches and the right patches the disparity map
    (times `scale` and `sign`) sends them to: how the convention was found."""
    left = cv2.cvtColor(pair.left, cv2.COLOR_BGR2GRAY).astype(np.float32)
    right = cv2.cvtColor(pair.right, cv2.COLOR_BGR2GRAY).astype(np.float32)
    h, w = left.shape
    rng = np.random.default_rng(seed)
    values = []
    disparity = pair.truth.disparity
    for _ in range(samples * 20):
        x, y = int(rng.integers(half + 2, w - half - 2)), int(rng.integers(half + 2, h - half - 2))
        d = disparity[y, x]
        a = left[y - half:y + half + 1, x - half:x + half + 1]
        xr = x - sign * scale * d
        if not np.isfinite(d) or not half + 2 <= xr < w - half - 2 or a.std() < 5:
            continue
        b = cv2.getRectSubPix(right, (2 * half + 1, 2 * half + 1), (float(xr), float(y)))
        a, b = a - a.mean(), b - b.mean()
        values.append(float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-6)))
        if len(values) >= samples:
            break
    return float(np.median(values)) if values else float("nan")


# -- scoring -------------------------------------------------------------------

UNIT_FIELDS = ("keypoints", "matches", "judged") + tuple(f"correct@{t}" for t in THRESHOLDS)
VIDEO_FIELDS = ("frames", "match_prec", "outlier_prec", "verified")


def pair_units(features_left: Features, features_right: Features, pair: StereoPair
               ) -> list[dict]:
    """Mutual-NN matches of one pair judged by its ground truth, counted per
    unit (tile of the left image; one unit when pair.tiles is (1, 1))."""
    idx_l, idx_r, _ = match_features(features_left, features_right, mutual=True, ratio=0.0)
    points_left = features_left.keypoints.astype(np.float64)
    points_right = features_right.keypoints.astype(np.float64)
    defined = pair.truth.defined(points_left)
    errors = pair.truth.errors(points_left[idx_l], points_right[idx_r])
    cols, rows = pair.tiles
    h, w = pair.left.shape[:2]

    def tile_of(points):
        tx = np.clip((points[:, 0] + 0.5) * cols // w, 0, cols - 1).astype(np.int64)
        ty = np.clip((points[:, 1] + 0.5) * rows // h, 0, rows - 1).astype(np.int64)
        return ty * cols + tx

    kp_tile = tile_of(points_left) if len(points_left) else np.zeros(0, np.int64)
    match_tile = kp_tile[idx_l]
    judged = ~np.isnan(errors)
    units = []
    for k in range(cols * rows):
        in_tile = match_tile == k
        unit = {"keypoints": int((defined & (kp_tile == k)).sum()),
                "matches": int(in_tile.sum()), "judged": int((in_tile & judged).sum())}
        for t in THRESHOLDS:
            unit[f"correct@{t}"] = int((in_tile & judged & (errors <= t)).sum())
        units.append(unit)
    return units


def video_units(records, block: int = VIDEO_BLOCK) -> list[dict]:
    """FrameRecords of one method (one matcher) -> units of `block` frame pairs."""
    frames = [r for r in records if not np.isnan(r.match_prec)]
    units = []
    for start in range(0, len(frames), block):
        chunk = frames[start:start + block]
        units.append({
            "frames": len(chunk),
            "match_prec": float(sum(r.match_prec for r in chunk)),
            "outlier_prec": float(sum(r.outlier_prec for r in chunk)),
            "verified": float(sum(r.inliers / r.num_kp if r.num_kp else 0.0 for r in chunk))})
    return units


def _sums(units: list[dict], names, draws: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Field sums over the units, or over each row of unit indices in `draws`."""
    out = {}
    for name in names:
        values = np.array([u[name] for u in units], np.float64)
        out[name] = values.sum(keepdims=True) if draws is None else values[draws].sum(axis=1)
    return out


def _ratio(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.maximum(b, 1e-12), 0.0)


def group_score(group: str, sums: dict[str, np.ndarray]) -> np.ndarray:
    """The group's score from field sums: MS@3 for stereo groups, verified
    matches per keypoint for video."""
    if group == "video":
        return _ratio(sums["verified"], sums["frames"])
    return _ratio(sums[f"correct@{SCORE_PX}"], sums["keypoints"])


def group_metrics(group: str, units: list[dict]) -> dict:
    """The figures a table shows for one group of one method."""
    if group == "video":
        s = _sums(units, VIDEO_FIELDS)
        return {"frames": int(s["frames"][0]),
                "match_prec": float(_ratio(s["match_prec"], s["frames"])[0]),
                "outlier_prec": float(_ratio(s["outlier_prec"], s["frames"])[0]),
                "verified_per_kp": float(group_score(group, s)[0])}
    s = _sums(units, UNIT_FIELDS)
    out = {f"precision@{t}": float(_ratio(s[f"correct@{t}"], s["judged"])[0])
           for t in THRESHOLDS}
    out.update({f"ms@{SCORE_PX}": float(group_score(group, s)[0]),
                "matches": int(s["matches"][0]), "judged": int(s["judged"][0]),
                **{f"correct@{t}": int(s[f"correct@{t}"][0]) for t in THRESHOLDS}})
    return out


def bootstrap_scores(units: dict[str, dict[str, list[dict]]], resamples: int = RESAMPLES,
                     seed: int = 0) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Paired stratified bootstrap. units: method -> group -> unit list (every
    method has the same units of a group, in the same order). Returns
    (method -> group -> (resamples,) group scores, method -> (resamples,) scores)."""
    rng = np.random.default_rng(seed)
    methods = list(units)
    groups = [g for g in GROUPS if all(units[m].get(g) for m in methods)]
    draws = {}
    for group in groups:
        counts = {len(units[m][group]) for m in methods}
        if len(counts) != 1:
            raise ValueError(f"methods have different numbers of {group} units: {sorted(counts)}")
        n = counts.pop()
        draws[group] = rng.integers(0, n, (resamples, n))
    per_group = {m: {} for m in methods}
    for m in methods:
        for group in groups:
            names = VIDEO_FIELDS if group == "video" else UNIT_FIELDS
            per_group[m][group] = group_score(group, _sums(units[m][group], names, draws[group]))
    scores = {m: (np.mean([per_group[m][g] for g in groups], axis=0) if groups
                  else np.zeros(resamples)) for m in methods}
    return per_group, scores


@dataclass
class RealValidation:
    """What `evaluate_real` returns (json-ready through `as_dict`)."""
    methods: dict[str, dict]
    ranking: list[dict]
    sets: dict
    skipped: dict[str, str]
    pairwise: dict[str, dict[str, float]] = field(default_factory=dict)  # P(row > column)

    def as_dict(self) -> dict:
        return {"sets": self.sets, "methods": self.methods, "ranking": self.ranking,
                "pairwise_p_higher": self.pairwise, "skipped": self.skipped}


def p_higher(a: np.ndarray, b: np.ndarray) -> float:
    """Bootstrap probability that `a` scores higher than `b` (ties count half)."""
    return float(np.mean(a > b) + 0.5 * np.mean(a == b))


def evaluate_real(models: dict, pairs: list[StereoPair], videos: dict[str, dict] | None = None,
                  *, video_dir: Path | None = None, resamples: int = RESAMPLES, seed: int = 0,
                  progress: Callable[[str], None] | None = None) -> RealValidation:
    """Run every model on the stereo pairs and the videos (name -> {"stride",
    "max_frames"}, files in `video_dir`, default opencv-doc's folder) and score them."""
    from .sequence import evaluate_sequence, iter_sequence
    if not models:
        raise ValueError("no models to evaluate")
    bad = [name for name in (videos or {}) if name in REPORTING_ONLY_VIDEOS]
    if bad:
        raise ValueError(f"{', '.join(bad)} is kept for reporting only; it is never used "
                         "for choosing")
    units = {label: {"disparity": [], "epipolar": [], "video": []} for label in models}
    per_pair = {label: [] for label in models}
    keypoints = {label: [] for label in models}
    for label, model in models.items():
        if pairs:
            model.extract(pairs[0].left)        # warm-up
        for pair in pairs:
            left, right = model.extract(pair.left), model.extract(pair.right)
            found = pair_units(left, right, pair)
            units[label][pair.group] += found
            keypoints[label].append((len(left) + len(right)) / 2.0)
            per_pair[label].append({"pair": pair.name, "group": pair.group,
                                    "keypoints": [len(left), len(right)],
                                    **group_metrics(pair.group, found)})
            if progress is not None:
                progress(f"{label} {pair.name}")
    video_rows = {label: {} for label in models}
    video_dir = Path(video_dir or opencv_sample_data_dir())
    for name, frames_used in (videos or {}).items():
        frames = iter_sequence(video_dir / name, width=VIDEO_SIZE[0], height=VIDEO_SIZE[1],
                               stride=frames_used.get("stride", 1),
                               max_frames=frames_used.get("max_frames", 0))
        result = evaluate_sequence(frames, models, matchers=["mnn"], f_rej_th=5.0,
                                   name=Path(name).stem,
                                   progress=(lambda i, n=name: progress(f"{n} frame {i}"))
                                   if progress else None)
        for label in models:
            found = video_units([r for r in result.records if r.method == label])
            units[label]["video"] += found
            video_rows[label][name] = group_metrics("video", found)
    per_group, scores = bootstrap_scores(units, resamples, seed)
    methods = {}
    for label in models:
        groups = {}
        for group, found in units[label].items():
            if not found:
                continue
            metrics = group_metrics(group, found)
            boot = per_group[label].get(group)
            metrics["score"] = float(metrics["verified_per_kp"] if group == "video"
                                     else metrics[f"ms@{SCORE_PX}"])
            metrics["score_std"] = float(boot.std()) if boot is not None else float("nan")
            metrics["units"] = len(found)
            if group != "video":
                n_pairs = sum(1 for p in per_pair[label] if p["group"] == group)
                metrics["pairs"] = n_pairs
                metrics[f"correct@{SCORE_PX}_per_pair"] = metrics[f"correct@{SCORE_PX}"] / n_pairs
            groups[group] = metrics
        used = [g for g in GROUPS if g in groups]
        methods[label] = {
            "score": float(np.mean([groups[g]["score"] for g in used])) if used else float("nan"),
            "score_std": float(scores[label].std()),
            "score_interval": [float(np.percentile(scores[label], 2.5)),
                               float(np.percentile(scores[label], 97.5))],
            "keypoints_per_image": float(np.mean(keypoints[label])) if keypoints[label] else 0.0,
            "groups": groups, "videos": video_rows[label], "pairs": per_pair[label],
            "runtime": models[label].runtime_info() if hasattr(models[label], "runtime_info")
            else {}}
    order = sorted(methods, key=lambda m: -methods[m]["score"])
    ranking = []
    for upper, lower in zip(order, order[1:]):
        diff = scores[upper] - scores[lower]
        ranking.append({"upper": upper, "lower": lower,
                        "difference": methods[upper]["score"] - methods[lower]["score"],
                        "difference_std": float(diff.std()),
                        "p_upper_higher": p_higher(scores[upper], scores[lower]),
                        "p_upper_higher_by_group": {
                            g: p_higher(per_group[upper][g], per_group[lower][g])
                            for g in per_group[upper]},
                        "beyond_noise": bool(p_higher(scores[upper], scores[lower])
                                             >= BEYOND_NOISE)})
    pairwise = {a: {b: p_higher(scores[a], scores[b]) for b in order if b != a} for a in order}
    sets = {"stereo_pairs": [p.name for p in pairs], "videos": dict(videos or {}),
            "reporting_only_videos": list(REPORTING_ONLY_VIDEOS), "video_size": list(VIDEO_SIZE),
            "thresholds_px": list(THRESHOLDS), "score_px": SCORE_PX, "tiles": list(TILES),
            "video_block": VIDEO_BLOCK, "resamples": resamples, "seed": seed,
            "beyond_noise": BEYOND_NOISE}
    return RealValidation(methods, ranking, sets, {}, pairwise)


def format_table(result: RealValidation) -> str:
    """Markdown: one row per method, best score first, then the ranking."""
    def fmt(value, spec=".3f"):
        return "" if value is None or value != value else format(value, spec)

    header = ("| method | score ± std | disparity P@1/3/5 | disparity MS@3 ± std | "
              "disparity correct@3/pair | chessboard P@1/3/5 (epipolar) | chessboard MS@3 ± std | "
              "video match_prec | video outlier_prec | video verified/kp ± std | keypoints |")
    lines = [header, "|" + "|".join(["---"] * (header.count("|") - 1)) + "|"]
    order = sorted(result.methods, key=lambda m: -result.methods[m]["score"])
    for label in order:
        row = result.methods[label]
        g = row["groups"]
        cells = [f"**{label}**" if label == order[0] else label,
                 f"{fmt(row['score'])} ± {fmt(row['score_std'])}"]
        for group in ("disparity", "epipolar"):
            if group in g:
                m = g[group]
                cells.append(" / ".join(fmt(m[f"precision@{t}"], ".2f") for t in THRESHOLDS))
                cells.append(f"{fmt(m['ms@3'])} ± {fmt(m['score_std'])}")
                if group == "disparity":
                    cells.append(fmt(m["correct@3_per_pair"], ".0f"))
            else:
                cells += ["", ""] + ([""] if group == "disparity" else [])
        if "video" in g:
            m = g["video"]
            cells += [fmt(m["match_prec"]), fmt(m["outlier_prec"]),
                      f"{fmt(m['verified_per_kp'])} ± {fmt(m['score_std'])}"]
        else:
            cells += ["", "", ""]
        cells.append(fmt(row["keypoints_per_image"], ".0f"))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for step in result.ranking:
        verdict = "beyond noise" if step["beyond_noise"] else "within noise"
        groups = ", ".join(f"{g} {p:.2f}" for g, p in step.get("p_upper_higher_by_group",
                                                                 {}).items())
        lines.append(f"- {step['upper']} > {step['lower']}: {step['difference']:+.3f} "
                     f"± {step['difference_std']:.3f}, P(higher) {step['p_upper_higher']:.3f} "
                     f"({verdict}; by group: {groups})")
    if len(order) > 2 and result.pairwise:
        lines += ["", "P(row scores higher than column), paired bootstrap:", "",
                  "| | " + " | ".join(order) + " |", "|" + "---|" * (len(order) + 1)]
        for a in order:
            lines.append(f"| {a} | " + " | ".join(
                "" if a == b else f"{result.pairwise[a][b]:.2f}" for b in order) + " |")
    return "\n".join(lines)
