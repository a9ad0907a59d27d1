"""FP16/INT8 model variants: made on demand, cached by source hash, heads kept in float."""
from __future__ import annotations

import numpy as np
import pytest

from edgepoint_ros.config import ExtractorConfig
from edgepoint_ros.runtimes import create_session
from edgepoint_ros.runtimes import precision as precision_module
from edgepoint_ros.runtimes.calibration import (as_network_input, calibration_images,
                                                is_benchmark_image)
from edgepoint_ros.runtimes.precision import (derived_model, derived_model_path,
                                              model_for_precision, variant_for)
from tiny_networks import tiny_input, write_tiny_network


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPOINT_ROS_CACHE", str(tmp_path / "cache"))
    return write_tiny_network(tmp_path / "tiny.onnx")


def run_onnx(path, image):
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip(["scores", "descriptors"],
                    session.run(["scores", "descriptors"], {"image": image})))


def test_variant_table():
    assert variant_for("onnxruntime", "cpu", "fp32") is None
    assert variant_for("onnxruntime", "cpu", "fp16") == "ort-fp16"
    assert variant_for("onnxruntime", "cuda", "int8") == "ort-int8"
    assert variant_for("onnxruntime", "tensorrt", "fp16") is None  # TensorRT's own fp16
    assert variant_for("onnxruntime", "tensorrt", "int8") == "trt-int8"
    assert variant_for("openvino", "npu", "int8") == "ov-int8"


def test_fp32_is_the_source_itself(tiny):
    assert model_for_precision(tiny, "openvino", "cpu", "fp32") == tiny


def test_ort_fp16_keeps_float32_io_and_close_outputs(tiny):
    import onnx
    path = model_for_precision(tiny, "onnxruntime", "cpu", "fp16")
    model = onnx.load(str(path))
    assert {i.data_type for i in model.graph.initializer} == {onnx.TensorProto.FLOAT16}
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    image = tiny_input()
    reference, half = run_onnx(tiny, image), run_onnx(path, image)
    assert half["scores"].dtype == np.float32
    np.testing.assert_allclose(half["scores"], reference["scores"], atol=5e-3)


def test_ort_int8_is_qdq_with_float_heads_and_close_outputs(tiny):
    import onnx
    path = derived_model(tiny, "ort-int8", calibration_count=8)
    model = onnx.load(str(path))
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    producers = {o: n for n in model.graph.node for o in n.output}
    # the score head and its sigmoid stay float: scores come from a plain Sigmoid
    assert producers["scores"].op_type == "Sigmoid"
    assert producers[producers["scores"].input[0]].op_type == "Conv"
    image = tiny_input(seed=3)
    reference, quantized = run_onnx(tiny, image), run_onnx(path, image)
    # not a 1/255 staircase: the float head keeps thousands of distinct scores
    assert len(np.unique(quantized["scores"])) > 1000
    for name in ("scores", "descriptors"):
        corr = np.corrcoef(reference[name].ravel(), quantized[name].ravel())[0, 1]
        assert corr > 0.98, (name, corr)


def test_trt_int8_is_symmetric(tiny):
    import onnx
    from onnx import numpy_helper
    model = onnx.load(str(derived_model(tiny, "trt-int8", calibration_count=8)))
    zero_points = [numpy_helper.to_array(i) for i in model.graph.initializer
                   if "zero_point" in i.name]
    # int8 activations/weights (int32 for biases), all with zero point 0
    assert any(z.dtype == np.int8 for z in zero_points)
    assert all(z.dtype in (np.int8, np.int32) and not z.any() for z in zero_points)


def test_openvino_int8_via_nncf_runs_with_close_outputs(tiny):
    path = derived_model(tiny, "ov-int8", calibration_count=8)
    assert path.suffix == ".xml" and path.with_suffix(".bin").is_file()
    from edgepoint_ros.runtimes.openvino_backend import OpenVinoSession, core
    ops = {op.get_friendly_name(): op for op in core().read_model(str(path)).get_ops()}
    assert any(op.get_type_name() == "FakeQuantize" for op in ops.values())
    # the score head convolution reads int8 (its input is quantized) while its
    # output, the sigmoid and the network outputs stay float
    score_conv = next(op for name, op in ops.items()
                      if name.startswith("score_head") and op.get_type_name() == "Convolution")
    assert score_conv.input_value(0).get_node().get_type_name() == "FakeQuantize"
    sigmoid = next(op for op in ops.values() if op.get_type_name() == "Sigmoid")
    assert all(target.get_node().get_type_name() != "FakeQuantize"
               for target in sigmoid.output(0).get_target_inputs())
    image = tiny_input(seed=4)
    reference = run_onnx(tiny, image)
    quantized = OpenVinoSession(str(path), "cpu", "int8").run({"image": image})
    assert len(np.unique(quantized["scores"])) > 1000  # no 1/255 staircase
    for name in ("scores", "descriptors"):
        corr = np.corrcoef(reference[name].ravel(), quantized[name].ravel())[0, 1]
        assert corr > 0.98, (name, corr)


def test_variants_are_cached_by_source_content(tiny, monkeypatch):
    first = model_for_precision(tiny, "onnxruntime", "cpu", "fp16")
    stamp = first.stat().st_mtime_ns

    def must_not_rebuild(*_args):
        raise AssertionError("cached variant was rebuilt")
    monkeypatch.setattr(precision_module, "_make_ort_fp16", must_not_rebuild)
    assert model_for_precision(tiny, "onnxruntime", "cpu", "fp16") == first
    assert first.stat().st_mtime_ns == stamp
    # a changed file (e.g. retrained weights) gets a new cache entry
    tiny.write_bytes(tiny.read_bytes() + b"\n")
    assert derived_model_path(tiny, "ort-fp16") != first
    assert not list(first.parent.parent.glob(".*"))  # no half-written work directories left


def test_session_with_int8_precision_uses_the_quantized_file(tiny, monkeypatch):
    monkeypatch.setattr(precision_module, "DEFAULT_COUNT", 8)
    session = create_session(str(tiny), ExtractorConfig(runtime="onnxruntime", device="cpu",
                                                        precision="int8", fallback=False))
    info = session.info()
    assert info["precision"] == "int8" and "ort-int8" in info["model"]


def test_calibration_images_are_offline_data_never_the_benchmark():
    images = calibration_images(16)
    assert len(images) == 16
    assert all(image.shape == (480, 640, 3) and image.dtype == np.uint8 for image in images)
    again = calibration_images(16)
    assert all(np.array_equal(a, b) for a, b in zip(images, again))  # deterministic
    from pathlib import Path
    assert is_benchmark_image(Path("graf1.png")) and is_benchmark_image(Path("leuvenA.jpg"))
    assert not is_benchmark_image(Path("aero1.jpg"))
    rgb = as_network_input(images[0], 3)
    assert rgb.shape == (1, 3, 480, 640) and rgb.dtype == np.float32 and rgb.max() <= 1.0
    np.testing.assert_allclose(rgb[0, 0], images[0][:, :, 2] / 255.0, atol=1e-6)  # R first
    assert as_network_input(images[0], 1).shape == (1, 1, 480, 640)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        as_network_input(images[0], 4)
