"""Pictures for people: keypoints, tracks and side-by-side matches (OpenCV drawing).

* `draw_keypoints`: the extractor's debug image, one circle per keypoint,
  coloured from blue (low score) to red (high score) within the frame.
* `draw_tracks`: the matcher's debug image, the usual visual-odometry view:
  on the current frame, a line from where each matched keypoint was in the
  previous frame to where it is now (green) and a dot on each keypoint
  without a match (grey). Long lines = fast motion or wrong matches.
* `draw_side_by_side`: two frames next to each other with a line per match;
  used by the demo for artifacts/demo/matches.png.

All functions take and return HxWx3 uint8 BGR images and never modify their input.
Coordinates are in pixels with (0, 0) at the centre of the top-left pixel;
OpenCV's drawing uses `shift` bits of sub-pixel precision.
"""
from __future__ import annotations

import cv2
import numpy as np

from .models.base import as_bgr8

_SHIFT = 4  # sub-pixel bits for cv2 drawing
_SCALE = 1 << _SHIFT


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points, np.float64).reshape(-1, 2) * _SCALE).astype(np.int32)


def _score_colours(scores: np.ndarray) -> np.ndarray:
    """BGR colours from blue (lowest score in the frame) to red (highest)."""
    if len(scores) == 0:
        return np.zeros((0, 3), np.uint8)
    ranks = np.argsort(np.argsort(scores))
    levels = (255 * ranks / max(len(scores) - 1, 1)).astype(np.uint8)
    return cv2.applyColorMap(levels.reshape(-1, 1), cv2.COLORMAP_JET).reshape(-1, 3)


def blank_canvas(width: int, height: int) -> np.ndarray:
    return np.full((height, width, 3), 32, np.uint8)


def draw_keypoints(image: np.ndarray, keypoints: np.ndarray,
                   scores: np.ndarray | None = None, radius: int = 3) -> np.ndarray:
    canvas = as_bgr8(image).copy()
    keypoints = np.asarray(keypoints, np.float32).reshape(-1, 2)
    colours = _score_colours(np.asarray(scores if scores is not None
                                        else np.zeros(len(keypoints)), np.float32))
    for (x, y), colour in zip(_fixed(keypoints), colours):
        cv2.circle(canvas, (int(x), int(y)), radius * _SCALE,
                   tuple(int(c) for c in colour), 1, cv2.LINE_AA, _SHIFT)
    return canvas


def draw_tracks(image: np.ndarray, previous_xy: np.ndarray, current_xy: np.ndarray,
                unmatched_xy: np.ndarray | None = None) -> np.ndarray:
    """Lines previous -> current position on the current frame (see module doc)."""
    canvas = as_bgr8(image).copy()
    if unmatched_xy is not None:
        for x, y in _fixed(unmatched_xy):
            cv2.circle(canvas, (int(x), int(y)), 2 * _SCALE, (160, 160, 160), 1,
                       cv2.LINE_AA, _SHIFT)
    for (x0, y0), (x1, y1) in zip(_fixed(previous_xy), _fixed(current_xy)):
        cv2.line(canvas, (int(x0), int(y0)), (int(x1), int(y1)), (0, 200, 0), 1,
                 cv2.LINE_AA, _SHIFT)
        cv2.circle(canvas, (int(x1), int(y1)), 2 * _SCALE, (0, 255, 0), -1,
                   cv2.LINE_AA, _SHIFT)
    return canvas


def draw_side_by_side(image_a: np.ndarray, keypoints_a: np.ndarray, image_b: np.ndarray,
                      keypoints_b: np.ndarray, index_a: np.ndarray, index_b: np.ndarray,
                      max_lines: int = 300, seed: int = 0) -> np.ndarray:
    """Frame A left, frame B right, one line per match (a random subset of at
    most `max_lines`, each in its own colour so crossings stay readable)."""
    a, b = as_bgr8(image_a), as_bgr8(image_b)
    height = max(a.shape[0], b.shape[0])
    canvas = np.zeros((height, a.shape[1] + b.shape[1], 3), np.uint8)
    canvas[:a.shape[0], :a.shape[1]] = a
    canvas[:b.shape[0], a.shape[1]:] = b
    keypoints_a = np.asarray(keypoints_a, np.float32).reshape(-1, 2)
    keypoints_b = np.asarray(keypoints_b, np.float32).reshape(-1, 2) + [a.shape[1], 0]
    for x, y in _fixed(keypoints_a):
        cv2.circle(canvas, (int(x), int(y)), 2 * _SCALE, (160, 160, 160), 1, cv2.LINE_AA, _SHIFT)
    for x, y in _fixed(keypoints_b):
        cv2.circle(canvas, (int(x), int(y)), 2 * _SCALE, (160, 160, 160), 1, cv2.LINE_AA, _SHIFT)
    index_a, index_b = np.asarray(index_a, np.int64), np.asarray(index_b, np.int64)
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(len(index_a))[:max_lines]
    hues = rng.integers(0, 180, len(chosen)).astype(np.uint8)
    colours = cv2.cvtColor(np.stack([hues, np.full_like(hues, 255), np.full_like(hues, 255)],
                                    axis=1).reshape(-1, 1, 3), cv2.COLOR_HSV2BGR).reshape(-1, 3)
    start, end = _fixed(keypoints_a[index_a[chosen]]), _fixed(keypoints_b[index_b[chosen]])
    for (x0, y0), (x1, y1), colour in zip(start, end, colours):
        cv2.line(canvas, (int(x0), int(y0)), (int(x1), int(y1)),
                 tuple(int(c) for c in colour), 1, cv2.LINE_AA, _SHIFT)
    return canvas
