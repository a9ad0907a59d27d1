"""Weights never execute code, and a wrong or corrupt file is refused naming it.

What loads weights, and how it stays safe:
* PyTorch checkpoints (.pt/.pth: EdgePoint's `load_weights`, XFeat's
  `load_xfeat_net`, the trainer) go through `torch.load(weights_only=True)`,
  whose unpickler only rebuilds tensors and plain containers: a pickle that
  names a callable is refused before anything runs.
* ONNX files are protobuf, read by ONNX Runtime or OpenVINO: data, not code
  (a pickle renamed .onnx is just an unreadable file).
* Features files (.npz) load with allow_pickle=False.
The tests go through what the nodes and CLIs call (`create_model`, the
export CLI), with the cache in a temporary directory, and check both the
message and that the payload did not run.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from edgepoint_ros.config import ExtractorConfig
from edgepoint_ros.features import Features
from edgepoint_ros.models import create_model
from tiny_networks import write_tiny_network


class _CodeOnLoad:
    """Unpickling this object calls Path.touch(marker): code run by loading."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("EDGEPOINT_ROS_CACHE", str(path))
    return path


@pytest.fixture(scope="module")
def xfeat_onnx(tmp_path_factory) -> Path:
    """A real XFeat ONNX file: the one set-up exported, else exported now."""
    from edgepoint_ros.models.xfeat import default_onnx_path
    if default_onnx_path().is_file():
        return default_onnx_path()
    from edgepoint_ros.cli import export_onnx
    out = tmp_path_factory.mktemp("xfeat") / "xfeat.onnx"
    assert export_onnx.main(["--model", "xfeat", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def edgepoint_like_onnx(tmp_path_factory) -> Path:
    """EdgePoint's input and output names, but 8-channel descriptors: another network."""
    return write_tiny_network(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


def _torch_checkpoint_with_code(path: Path, marker: Path) -> Path:
    import torch
    torch.save({"model": {"weight": torch.zeros(1)}, "hook": _CodeOnLoad(marker)}, path)
    return path


# ---- pickled code -------------------------------------------------------------------
@pytest.mark.parametrize("writer", ["torch.save", "plain pickle"])
def test_edgepoint_checkpoint_with_code_is_refused_and_never_runs(tmp_path, cache, writer):
    marker = tmp_path / "code_ran"
    evil = tmp_path / "weights.pt"
    if writer == "torch.save":
        _torch_checkpoint_with_code(evil, marker)
    else:  # the pre-zip format: a bare pickle stream
        evil.write_bytes(pickle.dumps({"model": _CodeOnLoad(marker)}))
    with pytest.raises(ValueError, match=r"cannot load EdgePoint weights .*weights\.pt: not a "
                                         r"safe PyTorch checkpoint"):
        create_model(ExtractorConfig(model="edgepoint", weights=str(evil)))
    assert not marker.exists()
    assert not list(cache.glob("*.onnx")), "nothing may be exported from a refused checkpoint"


def test_xfeat_checkpoint_with_code_is_refused_by_the_export_cli(tmp_path, capsys):
    from edgepoint_ros.cli import export_onnx
    marker = tmp_path / "code_ran"
    evil = _torch_checkpoint_with_code(tmp_path / "xfeat_evil.pt", marker)
    out = tmp_path / "xfeat.onnx"
    assert export_onnx.main(["--model", "xfeat", "--weights", str(evil), "--out", str(out)]) == 1
    error = capsys.readouterr().err
    assert "cannot load XFeat weights" in error and "not a safe PyTorch checkpoint" in error
    assert not marker.exists() and not out.exists()


def test_a_pickle_named_onnx_is_data_not_code(tmp_path):
    marker = tmp_path / "code_ran"
    fake = tmp_path / "model.onnx"
    fake.write_bytes(pickle.dumps(_CodeOnLoad(marker)))
    for runtime in ("onnxruntime", "openvino"):
        with pytest.raises(ValueError, match=r"cannot load .*model\.onnx"):
            create_model(ExtractorConfig(model="xfeat", weights=str(fake), runtime=runtime))
    assert not marker.exists()


def test_features_files_never_unpickle(tmp_path):
    path = tmp_path / "features.npz"
    np.savez(path, keypoints=np.zeros((1, 2), np.float32), scores=np.zeros(1, np.float32),
             descriptors=np.array([{"not": "numbers"}], dtype=object),
             image_size=np.array([4, 4], np.int32), descriptor_type=np.asarray("float32"),
             descriptor_dim=np.asarray(64, np.int32))
    with pytest.raises(ValueError, match="allow_pickle=False"):
        Features.load_npz(path)


# ---- corrupt and wrong files ----------------------------------------------------------
@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_a_truncated_onnx_file_is_refused_naming_it(tmp_path, xfeat_onnx, runtime):
    data = xfeat_onnx.read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match=r"cannot load .*truncated\.onnx"):
        create_model(ExtractorConfig(model="xfeat", weights=str(truncated), runtime=runtime,
                                     fallback=True))


def test_an_xfeat_onnx_given_as_edgepoint_weights_is_refused(xfeat_onnx):
    with pytest.raises(ValueError, match=r"is not an EdgePoint model: inputs \['image'\], "
                                         r"outputs .*keypoint_logits"):
        create_model(ExtractorConfig(model="edgepoint", weights=str(xfeat_onnx)))


def test_an_edgepoint_interface_onnx_given_as_xfeat_weights_is_refused(edgepoint_like_onnx):
    with pytest.raises(ValueError, match="is not an XFeat backbone"):
        create_model(ExtractorConfig(model="xfeat", weights=str(edgepoint_like_onnx)))


def test_an_onnx_with_edgepoint_names_but_other_descriptors_is_refused(edgepoint_like_onnx):
    model = create_model(ExtractorConfig(model="edgepoint", weights=str(edgepoint_like_onnx),
                                         runtime="onnxruntime"))
    with pytest.raises(ValueError, match="is not an EdgePoint model: its descriptors have 8 "
                                         "channels, EdgePoint's have 64"):
        model.extract(np.zeros((64, 96, 3), np.uint8))


@pytest.mark.parametrize("model", ["edgepoint", "xfeat"])
def test_missing_weights_and_directories_are_named(tmp_path, model):
    with pytest.raises(FileNotFoundError, match=r"weights not found: .*nope\.onnx"):
        create_model(ExtractorConfig(model=model, weights=str(tmp_path / "nope.onnx")))
    with pytest.raises(FileNotFoundError, match="weights not found"):
        create_model(ExtractorConfig(model=model, weights=str(tmp_path)))
