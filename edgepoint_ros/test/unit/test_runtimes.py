"""Runtime selection, fallback and the backends, on this machine's real runtimes.

No GPU is on the development/CI machines: the GPU devices are tested for what
they must do when absent (clear RuntimeUnavailable, or a CPU fallback that
says so), and on a machine that has them, for running there.
"""
from __future__ import annotations


import numpy as np
import pytest

from edgepoint_ros.config import ExtractorConfig
from edgepoint_ros.paths import SHIPPED_WEIGHTS_DIR
from edgepoint_ros.runtimes import RuntimeUnavailable, SessionLayout, create_session
from edgepoint_ros.runtimes import onnxruntime_backend, openvino_backend
from edgepoint_ros.runtimes.base import RuntimeFallbackWarning
from edgepoint_ros.runtimes.onnxruntime_backend import OnnxRuntimeSession
from edgepoint_ros.runtimes.openvino_backend import OpenVinoSession
from edgepoint_ros.runtimes.selection import AUTO_ORDER, candidate_pairs, plan
from tiny_networks import tiny_input, write_tiny_network

GPU_DEVICES = ("tensorrt", "cuda", "gpu", "npu")


def fp32(**settings) -> ExtractorConfig:
    """A config at fp32: these tests compare runtimes and devices number for
    number (INT8, the default, has its own tests: test_quantization.py)."""
    return ExtractorConfig(precision="fp32", **settings)


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPOINT_ROS_CACHE", str(tmp_path / "cache"))
    return str(write_tiny_network(tmp_path / "tiny.onnx"))


def offered(device: str) -> bool:
    return (device in onnxruntime_backend.available_devices()
            or device in openvino_backend.available_devices())


def reference_outputs(path: str, image: np.ndarray) -> dict:
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return dict(zip(["scores", "descriptors"], session.run(["scores", "descriptors"],
                                                           {"image": image})))


def test_auto_picks_the_first_available_device_in_the_documented_order(tiny):
    session = create_session(tiny, fp32())
    info = session.info()
    expected = next((r, d) for r, d in AUTO_ORDER if offered(d) or d == "cpu")
    if not any(offered(d) for d in GPU_DEVICES):  # this machine and CI
        assert expected == ("openvino", "cpu")
    assert (info["runtime"], info["device"]) == expected
    if info["runtime"] == "openvino":
        # read back from the compiled model, not from the list of devices
        assert info["execution_devices"][0].split(".")[0] == info["device"].upper()
    assert "fallback" not in info


def test_auto_with_a_named_runtime_keeps_to_it(tiny):
    info = create_session(tiny, fp32(runtime="onnxruntime")).info()
    assert info["runtime"] == "onnxruntime"
    if not offered("cuda") and not offered("tensorrt"):
        assert info["providers"] == ["CPUExecutionProvider"]
        assert info["device"] == "cpu"


def test_cpu_with_auto_runtime_prefers_openvino_then_onnxruntime():
    assert candidate_pairs("auto", "cpu") == [("openvino", "cpu"), ("onnxruntime", "cpu")]
    assert candidate_pairs("onnxruntime", "auto") == [
        ("onnxruntime", "tensorrt"), ("onnxruntime", "cuda"), ("onnxruntime", "cpu")]


def test_device_the_runtime_does_not_offer_is_a_config_error():
    with pytest.raises(ValueError, match="openvino.*no device 'cuda'.*onnxruntime"):
        candidate_pairs("openvino", "cuda")
    with pytest.raises(ValueError, match="onnxruntime.*no device 'npu'"):
        candidate_pairs("onnxruntime", "npu")


@pytest.mark.parametrize("device", GPU_DEVICES)
def test_explicit_absent_device_without_fallback_fails_naming_what_is_missing(tiny, device):
    config = fp32(device=device, fallback=False)
    if offered(device):  # a machine that has it: it must really run there
        assert create_session(tiny, config).info()["device"] == device
        return
    with pytest.raises(RuntimeUnavailable) as error:
        create_session(tiny, config)
    message = str(error.value)
    assert f"device={device}" in message and "fallback=false" in message
    assert f"no {device!r} device" in message
    assert {"tensorrt": "TensorRT", "cuda": "CUDA", "gpu": "Intel GPU",
            "npu": "Intel NPU"}[device] in message  # what to install


@pytest.mark.parametrize("device", GPU_DEVICES)
def test_explicit_absent_device_with_fallback_runs_on_cpu_and_warns(tiny, device):
    if offered(device):  # a machine that has it: no fallback, it runs there
        assert create_session(tiny, fp32(device=device)).info()["device"] == device
        return
    with pytest.warns(RuntimeFallbackWarning, match=f"device={device}.*falling back to"):
        session = create_session(tiny, fp32(device=device, fallback=True))
    info = session.info()
    assert info["device"] == "cpu"
    assert device in info["fallback"]
    image = tiny_input()
    np.testing.assert_allclose(session.run({"image": image})["scores"],
                               reference_outputs(tiny, image)["scores"], atol=1e-5)


def test_fallback_keeps_the_named_runtime(tiny):
    config = fp32(runtime="onnxruntime", device="cuda")
    if offered("cuda"):
        assert create_session(tiny, config).info()["device"] == "cuda"
        return
    with pytest.warns(RuntimeFallbackWarning):
        info = create_session(tiny, config).info()
    assert (info["runtime"], info["device"]) == ("onnxruntime", "cpu")


def test_requested_cuda_that_silently_runs_on_cpu_is_detected(tiny):
    """onnxruntime accepts CUDAExecutionProvider and quietly runs on the CPU when
    CUDA cannot load (always so with the CPU-only wheel); the session must notice."""
    if offered("cuda"):
        assert OnnxRuntimeSession(tiny, "cuda").info()["device"] == "cuda"
        return
    with pytest.raises(RuntimeUnavailable, match="CUDAExecutionProvider is not running"):
        OnnxRuntimeSession(tiny, "cuda")


def test_tensorrt_options_carry_fp16_int8_and_persistent_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPOINT_ROS_CACHE", str(tmp_path))
    fp16 = onnxruntime_backend.tensorrt_provider_options("fp16")
    assert fp16["trt_fp16_enable"] == "True" and fp16["trt_int8_enable"] == "False"
    assert fp16["trt_engine_cache_enable"] == "True"
    assert fp16["trt_engine_cache_path"] == str(tmp_path / "trt_engines")
    assert fp16["trt_timing_cache_enable"] == "True"
    assert (tmp_path / "trt_engines").is_dir()
    assert onnxruntime_backend.tensorrt_provider_options("fp32")["trt_fp16_enable"] == "False"
    assert onnxruntime_backend.tensorrt_provider_options("int8")["trt_int8_enable"] == "True"
    providers = onnxruntime_backend.provider_list("tensorrt", "fp32")
    assert [p[0] if isinstance(p, tuple) else p for p in providers] == [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_missing_model_file_is_a_clear_error(tmp_path, runtime):
    missing = str(tmp_path / "nope.onnx")
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        create_session(missing, ExtractorConfig(runtime=runtime))


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_corrupt_model_file_is_a_clear_error_even_with_fallback(tmp_path, runtime):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(ValueError, match="cannot load .*corrupt.onnx"):
        create_session(str(corrupt), ExtractorConfig(runtime=runtime, fallback=True))


def test_onnxruntime_and_openvino_agree_and_openvino_follows_new_input_sizes(tiny):
    ort_session = create_session(tiny, fp32(runtime="onnxruntime", device="cpu"))
    ov_session = create_session(tiny, fp32(runtime="openvino", device="cpu"))
    assert ov_session.input_names == ["image"]
    assert ov_session.output_names == ["scores", "descriptors"]
    for height, width in ((64, 96), (32, 32), (64, 96)):
        image = tiny_input(height, width)
        a, b = ort_session.run({"image": image}), ov_session.run({"image": image})
        assert b["scores"].shape == (1, 1, height, width)
        assert b["descriptors"].shape == (1, 8, height // 8, width // 8)
        for name in ("scores", "descriptors"):
            np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=1e-5)


def test_openvino_outputs_are_not_overwritten_by_the_next_run(tiny):
    session = OpenVinoSession(tiny, "cpu")
    first = session.run({"image": tiny_input(seed=1)})["scores"]
    kept = first.copy()
    session.run({"image": tiny_input(seed=2)})
    np.testing.assert_array_equal(first, kept)


def test_openvino_takes_the_layouts_asked_for_and_says_so(tiny):
    plain = OpenVinoSession(tiny, "cpu")
    relaid = OpenVinoSession(tiny, "cpu", layout=SessionLayout(
        bgr8_image=True, channels_last=("descriptors", "no_such_output")))
    assert relaid.takes_bgr8 and relaid.channels_last_outputs == {"descriptors"}
    assert not plain.takes_bgr8 and not plain.channels_last_outputs
    frame = np.random.default_rng(4).integers(0, 256, (64, 96, 3), np.uint8)
    rgb = frame[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255
    a, b = plain.run({"image": rgb}), relaid.run({"image": frame[None]})
    assert b["descriptors"].shape == (1, 64 // 8, 96 // 8, 8)
    np.testing.assert_allclose(b["descriptors"], a["descriptors"].transpose(0, 2, 3, 1),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b["scores"], a["scores"], rtol=1e-5, atol=1e-6)


def test_openvino_without_copy_hands_out_the_buffers_the_next_run_overwrites(tiny):
    session = OpenVinoSession(tiny, "cpu")
    first = session.run({"image": tiny_input(seed=1)}, copy=False)["scores"]
    kept = first.copy()
    second = session.run({"image": tiny_input(seed=2)}, copy=False)["scores"]
    assert np.shares_memory(first, second) and not np.array_equal(first, kept)


def test_openvino_info_reports_execution_devices_and_precision(tiny):
    info = OpenVinoSession(tiny, "cpu", num_threads=1).info()
    assert info["execution_devices"] == ["CPU"]
    assert info["inference_precision"] == "f32"  # fp32 asked: forced, even on bf16/AMX CPUs


def test_fp16_on_a_cpu_without_fp16_arithmetic_is_refused_not_faked(tiny):
    capabilities = openvino_backend.core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if "FP16" in capabilities:
        assert OpenVinoSession(tiny, "cpu", "fp16").info()["inference_precision"] == "f16"
        return
    with pytest.raises(RuntimeUnavailable, match="no fp16 support"):
        create_session(tiny, ExtractorConfig(runtime="openvino", device="cpu",
                                             precision="fp16", fallback=False))
    with pytest.warns(RuntimeFallbackWarning, match="falling back to openvino/cpu/fp32"):
        info = create_session(tiny, ExtractorConfig(runtime="openvino", device="cpu",
                                                    precision="fp16", fallback=True)).info()
    assert info["precision"] == "fp32"


def test_fallback_plan_tries_cpu_then_fp32():
    asked, fallbacks = plan(ExtractorConfig(runtime="openvino", device="npu", precision="int8"))
    assert [str(c) for c in asked] == ["openvino/npu/int8"]
    assert [str(c) for c in fallbacks] == ["openvino/cpu/int8", "openvino/cpu/fp32"]
    asked, fallbacks = plan(fp32(device="gpu", fallback=False))
    assert [str(c) for c in asked] == ["openvino/gpu/fp32"] and fallbacks == []


# A real trained EdgePoint checkpoint: the one the package ships.
SHIPPED = SHIPPED_WEIGHTS_DIR / "edgepoint.pt"


def test_torch_reference_agrees_with_the_onnx_runtimes(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPOINT_ROS_CACHE", str(tmp_path / "cache"))
    from edgepoint_ros.models.edgepoint_net import export_onnx
    onnx_path = str(export_onnx(SHIPPED, tmp_path / "edgepoint.onnx"))
    from edgepoint_ros.models.edgepoint import torch_network
    config = dict(model="edgepoint", weights=str(SHIPPED), fallback=False, precision="fp32")
    torch_config = ExtractorConfig(runtime="torch", **config)
    torch_session = create_session(onnx_path, torch_config,
                                   torch_network=lambda: torch_network(torch_config))
    info = torch_session.info()
    assert (info["runtime"], info["device"], info["precision"]) == ("torch", "cpu", "fp32")
    image = tiny_input(64, 96, seed=5)
    expected = torch_session.run({"image": image})
    for runtime in ("onnxruntime", "openvino"):
        got = create_session(onnx_path, ExtractorConfig(runtime=runtime, **config)).run(
            {"image": image})
        for name in ("scores", "descriptors"):
            np.testing.assert_allclose(got[name], expected[name], atol=1e-4)


def test_torch_runtime_refuses_what_it_cannot_do(tiny):
    from edgepoint_ros.models.edgepoint import torch_network
    with pytest.raises(RuntimeUnavailable, match="no int8"):
        config = ExtractorConfig(model="edgepoint", runtime="torch", precision="int8",
                                 fallback=False)
        create_session(tiny, config, torch_network=lambda: torch_network(config))
    with pytest.raises(ValueError, match="no network for model .orb."):
        create_session(tiny, ExtractorConfig(model="orb", runtime="torch"))


def test_openvino_copes_with_a_configured_size_the_network_cannot_take(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPOINT_ROS_CACHE", str(tmp_path / "cache"))
    from edgepoint_ros.models.edgepoint_net import export_onnx
    onnx_path = str(export_onnx(SHIPPED, tmp_path / "edgepoint.onnx"))
    # 300x434 is no multiple of EdgePoint's stride 32: the up-front static compile
    # fails, the session must still open (dynamic) and run padded frames.
    session = OpenVinoSession(onnx_path, "cpu", nominal_size=(300, 434))
    assert session.info()["execution_devices"] == ["CPU"]
    out = session.run({"image": tiny_input(320, 448)})
    assert out["scores"].shape == (1, 1, 320, 448)
