"""The `extract` command: one npz per image, readable back, clear failures."""
import subprocess
import sys

import cv2
import numpy as np
import pytest

from edgepoint_ros.cli import extract
from edgepoint_ros.cli.extractor_settings import parse_assignment
from edgepoint_ros.config import ExtractorConfig
from edgepoint_ros.features import Features
from edgepoint_ros.models import create_model
from edgepoint_ros.models.xfeat import default_onnx_path
from edgepoint_ros.paths import opencv_sample_data_dir

DATA = opencv_sample_data_dir()
IMAGES = [DATA / "graf1.png", DATA / "box.png"]


def test_writes_one_npz_per_image_matching_the_model(tmp_path, capsys):
    rc = extract.main(["--model", "sift", "--max-keypoints", "300", "--quiet",
                       "--set", "border=8", "--out", str(tmp_path), *map(str, IMAGES)])
    assert rc == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["box.npz", "graf1.npz"]
    with np.load(tmp_path / "graf1.npz") as z:
        assert z["keypoints"].dtype == np.float32 and z["keypoints"].shape[1] == 2
        assert z["descriptors"].shape == (len(z["keypoints"]), 128)
        assert z["scores"].shape == (len(z["keypoints"]),)
    saved = Features.load_npz(tmp_path / "graf1.npz")
    direct = create_model(ExtractorConfig(model="sift", max_keypoints=300, border=8)).extract(
        cv2.imread(str(IMAGES[0]), cv2.IMREAD_UNCHANGED))
    np.testing.assert_array_equal(saved.keypoints, direct.keypoints)
    np.testing.assert_array_equal(saved.descriptors, direct.descriptors)
    assert saved.image_size == (800, 640)
    assert "wrote 2 file(s)" in capsys.readouterr().out


def test_binary_descriptors_are_packed_bytes(tmp_path):
    assert extract.main(["--model", "orb", "--max-keypoints", "200", "--quiet",
                         "--out", str(tmp_path), str(IMAGES[0])]) == 0
    saved = Features.load_npz(tmp_path / "graf1.npz")
    assert saved.descriptor_type == "binary" and saved.descriptor_dim == 256
    assert saved.descriptors.dtype == np.uint8 and saved.descriptors.shape == (len(saved), 32)


def test_learned_model_binary_flag(tmp_path):
    if not default_onnx_path().is_file():
        pytest.skip("XFeat ONNX not exported (scripts/setup.sh does it)")
    assert extract.main(["--model", "xfeat", "--binary", "--max-keypoints", "500",
                         "--device", "cpu", "--quiet", "--out", str(tmp_path),
                         str(IMAGES[0])]) == 0
    saved = Features.load_npz(tmp_path / "graf1.npz")
    assert saved.descriptor_type == "binary" and saved.descriptors.shape == (500, 8)


def test_bad_images_are_reported_and_skipped(tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not a PNG")
    missing = tmp_path / "missing.jpg"
    out = tmp_path / "out"
    rc = extract.main(["--model", "orb", "--quiet", "--out", str(out),
                       str(bad), str(IMAGES[0]), str(missing)])
    assert rc == 1
    assert [p.name for p in out.iterdir()] == ["graf1.npz"]
    err = capsys.readouterr().err
    assert "broken.png: cannot decode" in err and "missing.jpg: no such file" in err


@pytest.mark.parametrize("argv,message", [
    (["--set", "nms_radius=two"], "nms_radius must be int"),
    (["--set", "colour=red"], "unknown extractor setting 'colour'"),
    (["--max-keypoints", "-3"], "max_keypoints must be >= 0"),
    (["--device", "quantum"], "device must be one of"),
])
def test_bad_settings_exit_2(tmp_path, capsys, argv, message):
    rc = extract.main(["--model", "orb", "--out", str(tmp_path), *argv, str(IMAGES[0])])
    assert rc == 2 and message in capsys.readouterr().err


def test_same_stem_twice_is_refused(tmp_path, capsys):
    other = tmp_path / "graf1.jpg"
    other.write_bytes(b"")
    rc = extract.main(["--model", "orb", "--out", str(tmp_path / "o"), str(IMAGES[0]),
                       str(other)])
    assert rc == 2 and "would both write graf1.npz" in capsys.readouterr().err


def test_parse_assignment_types():
    assert parse_assignment("subpixel=off") == ("subpixel", False)
    assert parse_assignment("score_threshold=0.25") == ("score_threshold", 0.25)
    assert parse_assignment(" weights = a.onnx ") == ("weights", "a.onnx")
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        parse_assignment("subpixel")


def test_runs_as_a_module(tmp_path):
    result = subprocess.run([sys.executable, "-m", "edgepoint_ros.cli.extract", "--model", "orb",
                             "--quiet", "--out", str(tmp_path), str(IMAGES[1])],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "box.npz").is_file()


def test_prepare_models_builds_what_a_configuration_needs(tmp_path, monkeypatch, capsys):
    from edgepoint_ros.cli import prepare_models
    monkeypatch.setenv("EDGEPOINT_ROS_CACHE", str(tmp_path / "cache"))
    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    model: edgepoint\n    runtime: openvino\n"
                      "    precision: int8\n    qos: reliable\n")
    assert prepare_models.main(["--params-file", str(params)]) == 0
    out = capsys.readouterr().out
    assert "ready on openvino/cpu/int8" in out
    assert list((tmp_path / "cache" / "models").glob("*ov-int8*/model.xml"))  # cached IR
    assert prepare_models.main(["--set", "max_keypoint=5"]) == 1
    assert "unknown extractor setting" in capsys.readouterr().err
