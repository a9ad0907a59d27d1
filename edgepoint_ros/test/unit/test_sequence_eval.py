"""Sequence evaluation (seed report metrics) on real opencv-doc frames, with ORB and SIFT."""
import csv
import json
import math

import cv2
import numpy as np
import pytest

from edgepoint_ros.bags import write_image_bag
from edgepoint_ros.config import ExtractorConfig
from edgepoint_ros.evaluation.sequence import (evaluate_sequence, format_summary, iter_sequence,
                                               sequence_kind, write_outputs)
from edgepoint_ros.models import create_model
from edgepoint_ros.paths import opencv_sample_data_dir

TREE = opencv_sample_data_dir() / "tree.avi"


@pytest.fixture(scope="module")
def frames():
    return list(iter_sequence(TREE, max_frames=4))


@pytest.fixture(scope="module")
def models():
    return {name: create_model(ExtractorConfig(model=name, max_keypoints=500))
            for name in ("orb", "sift")}


def test_metrics_follow_the_report_definitions(frames, models):
    result = evaluate_sequence(frames, models, name="tree")
    assert result.frames == 4 and len(result.records) == 4 * 2 * 2
    for r in result.records:
        assert 0 < r.num_kp <= 500 and r.extract_ms > 0
        if r.frame == 0:  # nothing to match the first frame with
            assert math.isnan(r.match_prec) and math.isnan(r.outlier_prec)
            continue
        assert 0 < r.inliers <= r.matches <= r.num_kp
        assert r.match_prec == pytest.approx(r.matches / r.num_kp)
        assert r.outlier_prec == pytest.approx((r.matches - r.inliers) / r.matches)
    rows = {(row["method"], row["matcher"]): row for row in result.summary()}
    assert list(rows) == [("orb", "ratio"), ("orb", "mnn"), ("sift", "ratio"), ("sift", "mnn")]
    for row in rows.values():
        assert row["frames"] == 3
        # consecutive video frames of a slowly moving camera: most keypoints match
        assert row["match_prec_mean"] > 0.3 and row["outlier_prec_mean"] < 0.3
    assert "orb        ratio" in format_summary(result)


def test_no_keypoints_and_identical_frames(frames, models):
    blank = np.full_like(frames[0], 128)
    result = evaluate_sequence([frames[0], blank, frames[0], frames[0]], {"orb": models["orb"]},
                               matchers=["mnn"])
    by_frame = {r.frame: r for r in result.records}
    # a frame without keypoints: match_prec 0 (report's rule), no match -> outlier_prec 1
    assert by_frame[1].num_kp == 0 and by_frame[1].match_prec == 0.0
    assert by_frame[1].outlier_prec == 1.0
    # keypoints but nothing to match in the blank previous frame
    assert by_frame[2].num_kp > 0 and by_frame[2].matches == 0
    assert by_frame[2].match_prec == 0.0 and by_frame[2].outlier_prec == 1.0
    # the same image twice: every keypoint matches itself, no outlier
    assert by_frame[3].match_prec > 0.95 and by_frame[3].outlier_prec == 0.0


def test_sources_images_video_bag(tmp_path, frames):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), frame)
    (folder / "notes.txt").write_text("not an image")
    from_folder = list(iter_sequence(folder))
    assert len(from_folder) == 4 and all(np.array_equal(a, b) for a, b in zip(from_folder, frames))
    video = list(iter_sequence(TREE, width=160, height=120, stride=2, start=1, max_frames=3))
    assert len(video) == 3 and video[0].shape == (120, 160, 3)
    bag = tmp_path / "bag"
    write_image_bag(bag, frames, [1_000_000_000 + i * 66_666_667 for i in range(4)])
    assert sequence_kind(bag) == "bag"
    from_bag = list(iter_sequence(bag))
    assert len(from_bag) == 4 and np.array_equal(from_bag[3], frames[3])


def test_source_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="sequence not found"):
        sequence_kind(tmp_path / "nothing")
    odd = tmp_path / "clip.xyz"
    odd.write_text("")
    with pytest.raises(ValueError, match="is neither a directory of images, a video"):
        sequence_kind(odd)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no images"):
        list(iter_sequence(empty))
    with pytest.raises(ValueError, match="width and height must be both 0"):
        list(iter_sequence(TREE, width=320))
    with pytest.raises(ValueError, match="matchers must be a non-empty subset of ratio, mnn"):
        evaluate_sequence([], {"x": None}, matchers=["knn"])


def test_outputs(tmp_path, frames, models):
    result = evaluate_sequence(frames[:3], models, name="tree")
    paths = write_outputs(result, tmp_path / "out")
    document = json.loads(paths["summary_json"].read_text())
    assert document["frames"] == 3 and document["settings"]["f_rej_th"] == 5.0
    assert document["settings"]["ratio"] == 0.7 and len(document["summary"]) == 4
    with open(paths["records"]) as handle:
        assert len(list(csv.DictReader(handle))) == 3 * 4
    for metric in ("match_prec", "outlier_prec", "num_kp", "extract_ms"):
        png = paths[f"plot_{metric}"]
        assert png.name == f"tree-{metric}.png" and png.read_bytes()[:4] == b"\x89PNG"


def test_cli(tmp_path, frames, capsys):
    from edgepoint_ros.cli.evaluate_sequence import main
    folder = tmp_path / "seq"
    folder.mkdir()
    for i, frame in enumerate(frames[:3]):
        cv2.imwrite(str(folder / f"{i}.png"), frame)
    out = tmp_path / "out"
    code = main([str(folder), "--methods", "orb,edgepoint", "--max-keypoints", "300",
                 "--set", "edgepoint.weights=/nonexistent/edgepoint.onnx", "--out", str(out),
                 "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "skipping edgepoint" in captured.err and "orb        mnn" in captured.out
    document = json.loads((out / "summary.json").read_text())
    assert "edgepoint" in document["skipped"] and document["settings"]["max_keypoints"] == 300
    assert main([str(folder), "--methods", "edgepoint", "--set",
                 "edgepoint.weights=/nonexistent/edgepoint.onnx", "--strict", "--out",
                 str(out), "--no-progress"]) == 1
    assert main([str(folder), "--methods", "orb", "--set", "orb.colour=red", "--out", str(out),
                 "--no-progress"]) == 1
    assert "'colour' is not an extractor setting" in capsys.readouterr().err
    assert main([str(folder), "--methods", "surf", "--out", str(out), "--no-progress"]) == 1
