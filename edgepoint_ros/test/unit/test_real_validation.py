"""The real-data validation set: ground truth of the stereo pairs, the rig's
calibration, scoring, the bootstrap's verdicts and the validate_real CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgepoint_ros.cli import evaluate as evaluate_cli
from edgepoint_ros.cli import validate_real
from edgepoint_ros.config import ExtractorConfig
from edgepoint_ros.evaluation import real_validation as rv
from edgepoint_ros.features import Features
from edgepoint_ros.models import create_model


@pytest.fixture(scope="module")
def aloe():
    return rv.aloe_pair()


@pytest.fixture(scope="module")
def motorcycle():
    return rv.motorcycle_pair()


@pytest.fixture(scope="module")
def calibration():
    return rv.calibrate_chessboard_rig(None)


def synthetic_matches(pair, shift=(0.0, 0.0), n=400, seed=0):
    """Left points where the truth is known, their true right points moved by
    `shift`, with identical descriptors on both sides (mutual NN pairs them)."""
    rng = np.random.default_rng(seed)
    h, w = pair.left.shape[:2]
    points = rng.uniform([0, 0], [w - 1, h - 1], (20 * n, 2))
    points = points[pair.truth.defined(points)][:n]
    right = pair.truth.correspondences(points) + np.asarray(shift)
    descriptors = rng.normal(size=(len(points), 64)).astype(np.float32)
    descriptors /= np.linalg.norm(descriptors, axis=1, keepdims=True)
    size = (w, h)
    return (Features(points, np.ones(len(points)), descriptors, size),
            Features(right, np.ones(len(points)), descriptors, size))


def test_perfect_matches_score_one(aloe):
    left, right = synthetic_matches(aloe)
    metrics = rv.group_metrics("disparity", rv.pair_units(left, right, aloe))
    assert metrics["judged"] == len(left) == 400
    assert metrics["precision@1"] == 1.0
    assert metrics["ms@3"] == 1.0


@pytest.mark.parametrize("shift", [(4.0, 0.0), (-4.0, 0.0), (0.0, 4.0), (3.2, -3.2)])
def test_shifted_matches_are_wrong_below_the_shift(aloe, shift):
    left, right = synthetic_matches(aloe, shift)
    metrics = rv.group_metrics("disparity", rv.pair_units(left, right, aloe))
    assert metrics["precision@1"] == 0.0
    assert metrics["precision@3"] == 0.0
    assert metrics["precision@5"] == 1.0


def test_points_without_truth_are_not_judged(aloe):
    left, right = synthetic_matches(aloe, n=50)
    unknown = np.argwhere(np.isnan(aloe.truth.disparity))[:20][:, ::-1].astype(np.float64)
    assert len(unknown) == 20
    points = np.vstack([left.keypoints, unknown])
    rng = np.random.default_rng(3)
    extra = rng.normal(size=(20, 64)).astype(np.float32)
    extra /= np.linalg.norm(extra, axis=1, keepdims=True)
    descriptors = np.vstack([left.descriptors, extra])
    left2 = Features(points, np.ones(len(points)), descriptors, left.image_size)
    right2 = Features(np.vstack([right.keypoints, unknown]), np.ones(len(points)), descriptors,
                      left.image_size)
    metrics = rv.group_metrics("disparity", rv.pair_units(left2, right2, aloe))
    assert metrics["matches"] == 70 and metrics["judged"] == 50
    assert metrics["precision@1"] == 1.0 and metrics["ms@3"] == 1.0


def test_disparity_convention_is_left_view_pixels(aloe, motorcycle):
    """GT-mapped patches correlate; the other sign or another scale do not."""
    for pair in (aloe, motorcycle):
        assert rv.disparity_ncc(pair, samples=300) > 0.85, pair.name
        assert rv.disparity_ncc(pair, sign=-1.0, samples=300) < 0.3, pair.name
        assert rv.disparity_ncc(pair, scale=2.0, samples=300) < 0.3, pair.name
        assert rv.disparity_ncc(pair, scale=0.5, samples=300) < 0.3, pair.name


def test_half_size_aloe_agrees_with_the_full_map(aloe):
    full = rv.aloe_pair(scale=1.0)
    rng = np.random.default_rng(1)
    half_points = rng.uniform([0, 0], [600, 540], (3000, 2))
    half_points = half_points[aloe.truth.defined(half_points)]
    full_points = 2.0 * half_points + 0.5
    ok = full.truth.defined(full_points)
    assert ok.mean() > 0.9
    mapped_half = aloe.truth.correspondences(half_points[ok])
    mapped_full = full.truth.correspondences(full_points[ok])
    difference = np.abs((mapped_full[:, 0] - 0.5) / 2.0 - mapped_half[:, 0])
    assert np.median(difference) <= 0.25 and np.percentile(difference, 99) <= 1.0


def test_calibration_of_the_chessboard_rig(calibration):
    assert calibration.rms < 0.6 and max(calibration.mono_rms) < 0.6
    distances = np.concatenate([calibration.epipolar_distances(a, b) for a, b in
                                zip(calibration.corners_left, calibration.corners_right)])
    assert len(distances) == 13 * 54
    assert np.median(distances) < 0.3 and np.percentile(distances, 99) < 1.0
    truth = rv.EpipolarTruth(calibration)
    left, right = calibration.corners_left[0], calibration.corners_right[0]
    assert np.median(truth.errors(left, right)) < 0.3
    assert (truth.errors(left, right + [0.0, 8.0]) > 5.0).all()      # off the epipolar line
    # along the line but behind the cameras (negative disparity): wrong
    assert np.isinf(truth.errors(right, left)).mean() > 0.9


class Scrambled:
    """A known-bad matcher: ORB keypoints whose descriptors are shuffled per image."""

    def __init__(self, model):
        self.model = model

    def extract(self, image):
        features = self.model.extract(image)
        order = np.random.default_rng(int(image.sum()) % 2**32).permutation(len(features))
        return Features(features.keypoints, features.scores, features.descriptors[order],
                        features.image_size, features.descriptor_type, features.descriptor_dim)


class Jittered(Scrambled):
    """Keypoints moved by 1.5-2.5 px after description (poorly localised)."""

    def extract(self, image):
        features = self.model.extract(image)
        rng = np.random.default_rng(int(image.sum()) % 2**32)
        angle = rng.uniform(0, 2 * np.pi, len(features))
        radius = rng.uniform(1.5, 2.5, len(features))
        moved = features.keypoints + np.c_[np.cos(angle), np.sin(angle)] * radius[:, None]
        return Features(moved, features.scores, features.descriptors, features.image_size,
                        features.descriptor_type, features.descriptor_dim)


@pytest.fixture(scope="module")
def ranked():
    orb = create_model(ExtractorConfig.from_mapping({"model": "orb",
                                                     **rv.VALIDATION_SETTINGS["orb"]}))
    pairs = [rv.aloe_pair()] + rv.chessboard_pairs()[:4]
    models = {"orb": orb, "orb-again": orb, "jittered": Jittered(orb), "scrambled": Scrambled(orb)}
    return rv.evaluate_real(models, pairs, {"Megamind.avi": {"stride": 1, "max_frames": 12}},
                            resamples=300)


def test_a_known_bad_matcher_ranks_below_beyond_noise(ranked):
    scores = {m: r["score"] for m, r in ranked.methods.items()}
    assert scores["scrambled"] < 0.05 < scores["orb"]
    assert scores["jittered"] < scores["orb"]
    steps = {(s["upper"], s["lower"]): s for s in ranked.ranking}
    assert steps[("jittered", "scrambled")]["beyond_noise"]
    assert ranked.pairwise["orb"]["scrambled"] == 1.0 == 1.0 - ranked.pairwise["scrambled"]["orb"]
    assert steps[("jittered", "scrambled")]["p_upper_higher_by_group"]["disparity"] == 1.0
    assert ranked.methods["scrambled"]["groups"]["video"]["outlier_prec"] > 0.5
    good, jittered = (ranked.methods[m]["groups"]["disparity"] for m in ("orb", "jittered"))
    assert jittered["precision@1"] < 0.5 * good["precision@1"]
    assert jittered["precision@5"] > 0.8 * good["precision@5"]


def test_identical_methods_are_within_noise(ranked):
    assert ranked.methods["orb"]["score"] == ranked.methods["orb-again"]["score"]
    step = next(s for s in ranked.ranking if {s["upper"], s["lower"]} == {"orb", "orb-again"})
    assert step["p_upper_higher"] == 0.5 and not step["beyond_noise"]
    video = ranked.methods["orb"]["groups"]["video"]
    assert video["frames"] == 11 and 0.0 < video["match_prec"] <= 1.0
    assert ranked.methods["orb"]["score_std"] > 0.0


def test_reporting_only_video_is_refused():
    orb = create_model(ExtractorConfig(model="orb"))
    with pytest.raises(ValueError, match="reporting only"):
        rv.evaluate_real({"orb": orb}, [], {"tree.avi": {}})
    assert validate_real.main(["--methods", "orb", "--stereo", "none",
                               "--videos", "tree.avi"]) == 2


def test_anchors_and_checkpoints_expand_through_evaluate():
    methods, weights, settings = evaluate_cli.expand_methods(
        "anchors", [], ["small.max_keypoints=500"], ["runs/a/checkpoint_00100.pt",
                                                     "mine=b.pt"])
    labels = evaluate_cli.parse_methods(methods)
    assert list(labels) == list(evaluate_cli.ANCHORS) + ["checkpoint_00100", "mine"]
    assert labels["checkpoint_00100"] == "edgepoint" and labels["released"] == "edgepoint"
    assert weights[0].startswith("released=") and weights[0].endswith("EdgePoint.pt")
    assert "checkpoint_00100=runs/a/checkpoint_00100.pt" in weights and "mine=b.pt" in weights
    assert settings[-1] == "small.max_keypoints=500"          # the user's --set comes last
    configs = evaluate_cli.method_configs(
        {"tiny": "edgepoint", "orb": "orb"}, [], ["tiny.model_size=tiny"], None, None,
        base=rv.VALIDATION_SETTINGS)
    assert configs["tiny"].max_keypoints == 1000 and configs["tiny"].pyramid_levels == 1
    assert configs["tiny"].model_size == "tiny" and configs["orb"].precision == "fp32"


def test_cli_prints_the_table_and_writes_results(tmp_path, capsys):
    code = validate_real.main(["--methods", "orb", "--stereo", "aloe", "--videos", "none",
                               "--resamples", "50", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "| method | score ± std |" in out and "| **orb** |" in out
    report = json.loads((tmp_path / "results.json").read_text())
    assert report["sets"]["stereo_pairs"] == ["aloe"]
    assert report["methods"]["orb"]["settings"]["max_keypoints"] == 1000
    assert 0.0 < report["methods"]["orb"]["groups"]["disparity"]["precision@3"] <= 1.0
    assert (tmp_path / "results.md").read_text().startswith("| method |")
