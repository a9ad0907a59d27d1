"""Homography benchmark: protocol math on synthetic data, a real Oxford pair, the CLI."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import locations
from edgepoint_ros.cli import evaluate as evaluate_cli
from edgepoint_ros.config import ExtractorConfig
from edgepoint_ros.evaluation import homography as hom
from edgepoint_ros.features import Features
from edgepoint_ros.geometry import apply_homography
from edgepoint_ros.models import create_model
from edgepoint_ros.paths import opencv_sample_data_dir

OXFORD = locations.SHARED_DIR / "data" / "oxford-affine"
H_SHIFT = np.array([[1, 0, 3.0], [0, 1, -4.0], [0, 0, 1]])
H_MILD = np.array([[0.95, 0.05, 12.0], [-0.04, 1.02, 6.0], [2e-5, -1e-5, 1.0]])


def test_corner_error_is_zero_for_the_truth_and_the_shift_otherwise():
    assert hom.corner_error(H_MILD, H_MILD, 640, 480) == pytest.approx(0.0, abs=1e-9)
    assert hom.corner_error(H_SHIFT, np.eye(3), 640, 480) == pytest.approx(5.0)
    assert hom.corner_error(None, np.eye(3), 640, 480) == float("inf")
    corners = hom.image_corners(640, 480)
    assert corners.tolist() == [[0, 0], [639, 0], [0, 479], [639, 479]]
    np.testing.assert_allclose(apply_homography(corners, H_SHIFT), corners + [3, -4])


def synthetic_pair(n_true=300, n_wrong=100, seed=0):
    """Keypoints in A, their exact images under H_MILD in B, the same descriptors;
    plus `n_wrong` matches to positions 20-60 px away from the truth."""
    rng = np.random.default_rng(seed)
    pts_a = rng.uniform(20, 600, (n_true + n_wrong, 2))
    pts_b = apply_homography(pts_a, H_MILD)
    offsets = rng.uniform(20, 60, (n_wrong, 2)) * rng.choice([-1, 1], (n_wrong, 2))
    pts_b[n_true:] += offsets
    desc = rng.standard_normal((len(pts_a), 32)).astype(np.float32)
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    order = rng.permutation(len(pts_b))  # B lists them in another order
    fa = Features(pts_a, np.ones(len(pts_a)), desc, (640, 480))
    fb = Features(pts_b[order], np.ones(len(pts_b)), desc[order], (640, 480))
    return fa, fb


def test_evaluate_matches_on_synthetic_matches():
    fa, fb = synthetic_pair()
    result = hom.evaluate_matches(fa, fb, H_MILD, ransac_trials=3)
    assert result["matches"] == 400
    assert result["mma3"] == pytest.approx(75.0)  # 300 of 400 within 3 px
    assert result["corner_error"] < 1e-3  # RANSAC recovers H from the 75% inliers
    assert result["inliers"] == 300
    assert len(result["corner_errors"]) == 3 and max(result["corner_errors"]) < 1e-3
    # Too few matches for a homography: infinite error, no crash.
    few = hom.evaluate_matches(fa.subset(np.arange(3)), fb, H_MILD)
    assert few["matches"] <= 3 and few["corner_error"] == float("inf")


def test_summary_math():
    pairs = [{"corner_error": e, "corner_errors": [e, t], "mma3": m, "matches": 10,
              "keypoints_a": 100, "keypoints_b": kb}
             for e, t, m, kb in [(0.5, 0.5, 80.0, 50), (2.0, 4.0, 60.0, 100),
                                 (4.0, 4.0, 40.0, 100), (float("inf"), 9.0, 0.0, 150)]]
    s = hom.summarize(pairs, seconds=[0.1, 0.3])
    assert (s["mha@1"], s["mha@3"], s["mha@5"]) == (25.0, 50.0, 75.0)
    assert s["mma@3"] == pytest.approx(45.0)
    assert s["mha@3_mean"] == pytest.approx(37.5) and s["mha@3_std"] == pytest.approx(12.5)
    assert s["mha@3_range"] == [25.0, 50.0]
    assert s["keypoints_per_image"] == pytest.approx(100.0)  # mean of (100+kb)/2
    assert s["seconds_per_image"] == pytest.approx(0.2)
    assert s["mha_curve"]["10"] == 75.0


def write_sequence(root: Path, name: str, homographies: dict[int, np.ndarray]) -> None:
    """A benchmark sequence made by warping a real photo with known homographies."""
    image = cv2.imread(str(opencv_sample_data_dir() / "graf1.png"))
    assert image is not None
    folder = root / name
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "img1.png"), image)
    for k, h in homographies.items():
        warped = cv2.warpPerspective(image, h, (image.shape[1], image.shape[0]))
        cv2.imwrite(str(folder / f"img{k}.png"), warped)
        np.savetxt(folder / f"H1to{k}p", h)


@pytest.fixture(scope="module")
def synthetic_benchmark(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    write_sequence(root, "warp", {2: H_MILD, 3: H_SHIFT})
    return root


def test_evaluate_model_on_synthetic_sequence(synthetic_benchmark):
    pairs = hom.load_oxford_pairs(synthetic_benchmark, targets=[2, 3])
    assert [p.name for p in pairs] == ["warp/1-2", "warp/1-3"]
    model = create_model(ExtractorConfig(model="orb", **hom.PROTOCOL_SETTINGS["orb"]))
    result = hom.evaluate_model(model, pairs, ransac_trials=2)
    s = result["summary"]
    assert s["mha@3"] == 100.0 and s["mma@3"] > 80.0
    assert s["images"] == 3 and s["pairs"] == 2 and s["seconds_per_image"] > 0
    assert all(p["corner_error"] < 1.5 for p in result["pairs"])


def test_loading_errors(tmp_path, synthetic_benchmark):
    with pytest.raises(FileNotFoundError, match="benchmark data folder not found"):
        hom.load_oxford_pairs(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="no sequences"):
        hom.load_oxford_pairs(tmp_path)
    with pytest.raises(ValueError, match="unknown sequences bikes"):
        hom.load_oxford_pairs(synthetic_benchmark, sequences=["bikes"])
    with pytest.raises(FileNotFoundError, match="H1to4p"):
        hom.load_oxford_pairs(synthetic_benchmark, targets=[4])
    with pytest.raises(ValueError, match="2..6"):
        hom.load_oxford_pairs(synthetic_benchmark, targets=[1])
    bad = tmp_path / "bad" / "seq"
    bad.mkdir(parents=True)
    for name in ("img1.png", "img2.png"):
        (bad / name).write_bytes(b"")
    (bad / "H1to2p").write_text("1 0 0\n0 1 0\n")
    with pytest.raises(ValueError, match="not a 3x3 homography"):
        hom.load_oxford_pairs(bad.parent, targets=[2])


def test_cli_writes_json_table_and_plot(synthetic_benchmark, tmp_path, capsys):
    out = tmp_path / "eval"
    rc = evaluate_cli.main(["--methods", "orb,few:orb,sift", "--set", "few.max_keypoints=300",
                            "--data", str(synthetic_benchmark), "--out", str(out),
                            "--ransac-trials", "2", "--quiet"])
    assert rc == 0
    table = capsys.readouterr().out
    assert "| orb |" in table and "| few |" in table and "| sift |" in table
    report = json.loads((out / "results.json").read_text())
    assert list(report["methods"]) == ["orb", "few", "sift"]
    few = report["methods"]["few"]
    assert few["settings"]["max_keypoints"] == 300 and few["model"] == "orb"
    assert few["summary"]["keypoints_per_image"] <= 300
    assert len(few["pairs"]) == 2 and few["runtime"]["runtime"] == "opencv"
    assert report["methods"]["orb"]["summary"]["mha@3"] == 100.0
    assert (out / "results.png").stat().st_size > 10_000
    assert (out / "results.md").read_text().startswith("| method |")


@pytest.mark.parametrize("argv,message", [
    (["--methods", "orb,surf"], "unknown model 'surf'"),
    (["--methods", "orb,orb"], "given twice"),
    (["--methods", "orb", "--weights", "sift=x.pt"], "expected METHOD=PATH"),
    (["--methods", "orb", "--set", "orb.nms=3"], "unknown extractor setting 'nms'"),
    (["--methods", "orb", "--set", "max_keypoints=3"], "expected METHOD.FIELD=VALUE"),
    (["--methods", "xfeat", "--weights", "xfeat=/nonexistent.onnx"], "method xfeat"),
    (["--methods", "orb", "--ransac-trials", "0"], "ransac-trials"),
    (["--methods", "orb", "--authors-settings", "orb"], "expected an EdgePoint method (none given)"),
])
def test_cli_bad_arguments(synthetic_benchmark, tmp_path, capsys, argv, message):
    rc = evaluate_cli.main([*argv, "--data", str(synthetic_benchmark),
                            "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_missing_data(tmp_path, capsys):
    assert evaluate_cli.main(["--methods", "orb", "--data", str(tmp_path / "none")]) == 2
    assert "benchmark data folder not found" in capsys.readouterr().err


@pytest.mark.skipif(not OXFORD.is_dir(), reason="../shared/data/oxford-affine not present")
def test_one_real_oxford_pair():
    pairs = hom.load_oxford_pairs(OXFORD, sequences=["graf"], targets=[2])
    model = create_model(ExtractorConfig(model="sift", **hom.PROTOCOL_SETTINGS["sift"]))
    result = hom.evaluate_model(model, pairs, ransac_trials=1)
    pair = result["pairs"][0]
    assert pair["pair"] == "graf/1-2"
    assert pair["matches"] > 500 and pair["mma3"] > 60.0
    assert pair["corner_error"] < 3.0


def test_edgepoint_protocol_and_authors_settings():
    configs = evaluate_cli.method_configs({"ours": "edgepoint", "released": "edgepoint"}, [],
                                          ["ours.max_keypoints=100"], None, None, ["released"])
    assert configs["ours"].pyramid_levels == 4 and configs["ours"].score_threshold == 0.1
    assert configs["ours"].max_keypoints == 100
    assert configs["released"].pyramid_levels == 1 and configs["released"].score_threshold == 0.5
    assert configs["released"].max_keypoints == 5000
