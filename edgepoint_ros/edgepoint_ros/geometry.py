"""Geometric verification of matches: which correspondences agree with one camera motion.

Two models, the ones `edgepoint_msgs/Matches.verification` names:

* ``"fundamental"``: a fundamental matrix F by RANSAC (``cv2.findFundamentalMat``
  with ``cv2.FM_RANSAC``). A match (x, x') is an inlier when x' lies within
  ``threshold_px`` pixels of its epipolar line F x (and x of F^T x'), OpenCV's
  own test. This is the seed report's outlier rejection (``--f_rej_th``, 5 px
  there; VINS' feature tracker uses 1 px). It holds for any static scene and
  any camera motion, so it is the default for a moving robot. Needs at least
  8 matches (OpenCV's RANSAC uses the 8-point algorithm; with 7 it returns no
  matrix but an all-ones mask, which we must not trust).
* ``"homography"``: a homography H by RANSAC (``cv2.findHomography`` with
  ``cv2.RANSAC``); an inlier's reprojection H x lies within ``threshold_px``
  of x'. Right for planar scenes or pure rotation (where F is degenerate).
  Needs at least 4 matches.
* ``"none"``: no verification; every match is accepted (`inliers` holds True).

When there are too few matches for the model, or RANSAC finds no model (all
points collinear, duplicated, ...), `Verification.model` is None and every
match is flagged **not verified** (`inliers` all False): with no model nothing
has been checked, and a tracker must not trust unchecked matches. Callers that
want "accept when unverifiable" read `Verification.model_found`.

OpenCV seeds its RANSAC generator with a fixed value, so the same input gives
the same inliers on every run.

The distance helpers (`epipolar_distance`, `sampson_distance`,
`homography_transfer_error`) measure a given model on given matches, e.g. to
re-check matches against a model estimated elsewhere or in tests.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VERIFICATION_METHODS = ("none", "fundamental", "homography")
# Values of edgepoint_msgs/Matches.verification for each method.
VERIFICATION_CODES = {"none": 0, "fundamental": 1, "homography": 2}
# Fewest matches each model can be estimated from.
MIN_MATCHES = {"none": 0, "fundamental": 8, "homography": 4}


@dataclass
class Verification:
    """Outcome of verifying one set of matches.

    method:  "none" | "fundamental" | "homography".
    inliers: (M,) bool; True where the match agrees with the model.
    model:   the 3x3 F or H, or None (method "none", too few matches, or no model found).
    """

    method: str
    inliers: np.ndarray
    model: np.ndarray | None

    @property
    def num_inliers(self) -> int:
        return int(np.count_nonzero(self.inliers))

    @property
    def num_outliers(self) -> int:
        return int(len(self.inliers) - self.num_inliers)

    @property
    def model_found(self) -> bool:
        return self.model is not None

    @property
    def code(self) -> int:
        """edgepoint_msgs/Matches.verification value."""
        return VERIFICATION_CODES[self.method]


def apply_homography(points, homography: np.ndarray) -> np.ndarray:
    """(N, 2) points mapped by a 3x3 homography (float64)."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    mapped = np.c_[points, np.ones(len(points))] @ np.asarray(homography, np.float64).T
    return mapped[:, :2] / mapped[:, 2:3]


def verify_matches(points_ref: np.ndarray, points_cur: np.ndarray, *,
                   method: str = "fundamental", threshold_px: float = 1.0,
                   confidence: float = 0.999, max_iters: int = 2000) -> Verification:
    """Flag the matches (points_ref[k], points_cur[k]) that agree with one model.

    points_ref, points_cur: (M, 2) pixel coordinates of the matched keypoints in
    the reference and the current frame. threshold_px: largest distance (pixels)
    of an inlier to its epipolar line (fundamental) or to its reprojection
    (homography). confidence: RANSAC's probability of having drawn an
    all-inlier sample. max_iters: RANSAC iterations at most.
    """
    if method not in VERIFICATION_METHODS:
        raise ValueError(f"verification method must be one of {', '.join(VERIFICATION_METHODS)}; "
                         f"got {method!r}")
    points_ref = _check_points("points_ref", points_ref)
    points_cur = _check_points("points_cur", points_cur)
    if len(points_ref) != len(points_cur):
        raise ValueError(f"points_ref has {len(points_ref)} points but points_cur has "
                         f"{len(points_cur)}; they must be matched pairs")
    threshold_px = float(threshold_px)
    if not threshold_px > 0.0:
        raise ValueError(f"threshold_px must be > 0 pixels; got {threshold_px}")
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")
    if int(max_iters) < 1:
        raise ValueError(f"max_iters must be >= 1; got {max_iters}")

    count = len(points_ref)
    if method == "none":
        return Verification(method, np.ones(count, bool), None)
    not_verified = Verification(method, np.zeros(count, bool), None)
    if count < MIN_MATCHES[method]:
        return not_verified

    import cv2
    try:
        if method == "fundamental":
            model, mask = cv2.findFundamentalMat(points_ref, points_cur, cv2.FM_RANSAC,
                                                 threshold_px, confidence, int(max_iters))
        else:
            model, mask = cv2.findHomography(points_ref, points_cur, cv2.RANSAC, threshold_px,
                                             maxIters=int(max_iters), confidence=confidence)
    except cv2.error:
        # OpenCV raises on some degenerate inputs (e.g. all points identical).
        return not_verified
    if model is None or mask is None or model.shape != (3, 3):
        return not_verified
    return Verification(method, mask.reshape(-1).astype(bool), model.astype(np.float64))


def epipolar_distance(F: np.ndarray, points_ref: np.ndarray, points_cur: np.ndarray) -> np.ndarray:
    """Symmetric epipolar distance in pixels: max of the distance of x' to the
    line F x and of x to the line F^T x' (the test OpenCV's F-RANSAC applies)."""
    F, x, xp = _model_and_homogeneous(F, points_ref, points_cur)
    line_cur = x @ F.T      # F x, one row per match
    line_ref = xp @ F       # F^T x'
    algebraic = np.abs(np.einsum("ij,ij->i", xp, line_cur))
    d_cur = algebraic / np.maximum(np.hypot(line_cur[:, 0], line_cur[:, 1]), 1e-12)
    d_ref = algebraic / np.maximum(np.hypot(line_ref[:, 0], line_ref[:, 1]), 1e-12)
    return np.maximum(d_cur, d_ref)


def sampson_distance(F: np.ndarray, points_ref: np.ndarray, points_cur: np.ndarray) -> np.ndarray:
    """First-order geometric (Sampson) error of each match under F, in pixels."""
    F, x, xp = _model_and_homogeneous(F, points_ref, points_cur)
    Fx = x @ F.T
    Ftxp = xp @ F
    algebraic = np.einsum("ij,ij->i", xp, Fx)
    denom = Fx[:, 0] ** 2 + Fx[:, 1] ** 2 + Ftxp[:, 0] ** 2 + Ftxp[:, 1] ** 2
    return np.abs(algebraic) / np.sqrt(np.maximum(denom, 1e-24))


def homography_transfer_error(H: np.ndarray, points_ref: np.ndarray,
                              points_cur: np.ndarray) -> np.ndarray:
    """Distance in pixels between H x and x' for each match."""
    H, x, xp = _model_and_homogeneous(H, points_ref, points_cur)
    projected = x @ H.T
    w = projected[:, 2:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        projected = projected[:, :2] / w
    error = np.linalg.norm(projected - xp[:, :2], axis=1)
    return np.where(np.isfinite(error), error, np.inf)


def _check_points(name: str, points) -> np.ndarray:
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{name} must have shape (M, 2) (pixel x, y); got {points.shape}")
    points = np.ascontiguousarray(points, dtype=np.float32)
    if not np.isfinite(points).all():
        raise ValueError(f"{name} contains NaN or infinite coordinates")
    return points


def _model_and_homogeneous(model, points_ref, points_cur):
    model = np.asarray(model, dtype=np.float64)
    if model.shape != (3, 3):
        raise ValueError(f"model must be a 3x3 matrix; got shape {model.shape}")
    points_ref = _check_points("points_ref", points_ref).astype(np.float64)
    points_cur = _check_points("points_cur", points_cur).astype(np.float64)
    if len(points_ref) != len(points_cur):
        raise ValueError(f"points_ref has {len(points_ref)} points but points_cur has "
                         f"{len(points_cur)}")
    ones = np.ones((len(points_ref), 1))
    return model, np.hstack([points_ref, ones]), np.hstack([points_cur, ones])
