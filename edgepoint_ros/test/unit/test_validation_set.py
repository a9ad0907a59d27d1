"""The held-out validation set: Oxford layout, homographies that really map
img1 onto imgK, and only images training never sees."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgepoint_ros.evaluation.homography import load_oxford_pairs
from edgepoint_ros.evaluation.validation_set import (KINDS, make_validation_set, unseen_held_out,
                                                     validation_sources)
from edgepoint_ros.training.data import find_training_images, split_holdout

OPENCV_DATA = "/usr/share/doc/opencv-doc/examples/data"


def _zncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (np.sqrt((a * a).sum() * (b * b).sum()) + 1e-6))


def test_sequences_have_the_oxford_layout_and_true_homographies(tmp_path):
    folders = make_validation_set(tmp_path / "set", photos_per_kind=1, seed=3,
                                  image_roots=(OPENCV_DATA,), video_dir=OPENCV_DATA)
    assert sorted(f.name for f in folders) == sorted(f"{kind}-1" for kind in KINDS)
    pairs = load_oxford_pairs(tmp_path / "set")
    assert len(pairs) == 5 * len(KINDS)
    for pair in pairs:
        a = cv2.imread(str(pair.image_a), cv2.IMREAD_GRAYSCALE).astype(np.float32)
        b = cv2.imread(str(pair.image_b), cv2.IMREAD_GRAYSCALE).astype(np.float32)
        size = (b.shape[1], b.shape[0])
        warped = cv2.warpPerspective(a, pair.homography, size)
        valid = cv2.warpPerspective(np.ones_like(a), pair.homography, size,
                                    flags=cv2.INTER_NEAREST) > 0
        valid &= cv2.erode((b > 0).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
        assert valid.sum() > 5000, pair.name
        right = _zncc(warped[valid], b[valid])
        shifted = cv2.warpPerspective(a, np.array([[1, 0, 12], [0, 1, 9], [0, 0, 1.0]])
                                      @ pair.homography, size)
        assert right > 0.75, (pair.name, right)          # blur and darkness lower it a little
        wrong = _zncc(shifted[valid], b[valid])      # the truth off by 15 px
        assert 1 - right < 0.5 * (1 - wrong), (pair.name, right, wrong)


def test_the_set_is_deterministic_for_a_seed(tmp_path):
    for name in ("one", "two"):
        make_validation_set(tmp_path / name, photos_per_kind=1, seed=5,
                            image_roots=(OPENCV_DATA,), video_dir=OPENCV_DATA)
    for path in (tmp_path / "one").rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (tmp_path / "two" / path.relative_to(tmp_path / "one")) \
                .read_bytes(), path


def test_held_out_near_duplicates_of_training_images_are_left_out(tmp_path):
    """Held out are paths 0 and 8 (every 8th, sorted). p0 has a copy at another
    size in training (p1): a validation image it would not be; p8 is new."""
    rng = np.random.default_rng(0)
    pictures = [cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3), np.uint8), (0, 0), 3)
                for _ in range(9)]
    pictures[1] = cv2.resize(pictures[0], (800, 600))
    for i, picture in enumerate(pictures):
        cv2.imwrite(str(tmp_path / f"p{i}.png"), picture)
    paths = find_training_images((tmp_path,))
    training, held_out = split_holdout(paths)
    assert [p.name for p in held_out] == ["p0.png", "p8.png"]
    assert not set(training) & set(held_out)
    assert [p.name for p in unseen_held_out(paths)] == ["p8.png"]


def test_without_photographs_the_set_uses_video_frames_or_says_what_is_missing(tmp_path):
    sources = validation_sources((tmp_path,), OPENCV_DATA)
    assert sources and all(s.shape[:2] in ((576, 768), (528, 720)) for s in sources)
    with pytest.raises(FileNotFoundError, match="no held-out images"):
        make_validation_set(tmp_path / "out", image_roots=(tmp_path,), video_dir=tmp_path)


def test_a_rerun_replaces_earlier_sequences(tmp_path):
    out = tmp_path / "set"
    make_validation_set(out, photos_per_kind=2, image_roots=(OPENCV_DATA,), video_dir=OPENCV_DATA)
    make_validation_set(out, photos_per_kind=1, image_roots=(OPENCV_DATA,), video_dir=OPENCV_DATA)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{kind}-1" for kind in KINDS)
