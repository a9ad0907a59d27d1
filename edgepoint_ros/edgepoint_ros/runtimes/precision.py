"""FP16 and INT8 versions of an fp32 ONNX network, made on demand and cached.

`model_for_precision(source, runtime, device, precision)` returns the file a
runtime should load for a precision; for fp32 that is the source itself.
Derived files are written once into ``<cache>/models/<stem>-<hash>-<variant>/``
(``hash`` = SHA-256 of the source file, so a retrained network gets new
files) and reused afterwards. Making them needs the tools of the training
install (onnx, onnxruntime.quantization, nncf); a robot without them can
run files made elsewhere by copying the cache directory, or made ahead with

    python -m edgepoint_ros.runtimes.precision MODEL.onnx --runtime openvino --precision int8

Variants:

* ``ort-fp16``: the graph in float16 with float32 inputs/outputs
  (onnxruntime.transformers.float16, `keep_io_types`), for ONNX Runtime on
  CPU/CUDA. TensorRT gets the fp32 graph and builds an fp16 engine itself.
* ``ort-int8``: static QDQ quantization (onnxruntime.quantization.
  quantize_static): uint8 activations, int8 per-channel weights, MinMax
  ranges from the calibration images (`calibration.py`).
* ``trt-int8``: the same with symmetric int8 activations and weights, the
  form TensorRT's explicit quantization accepts.
* ``ov-fp16``: OpenVINO IR with weights compressed to fp16
  (``save_model(compress_to_fp16=True)``), compiled with the f16 precision hint.
* ``ov-int8``: OpenVINO IR quantized by NNCF (``nncf.quantize``, default
  mixed preset: symmetric weights, asymmetric activations) from the same
  calibration images.

The network outputs stay in floating point. Quantized all the way, the score
map would come out in 1/255 steps after the sigmoid, which turns the
non-maximum suppression into a field of ties, and the descriptors would lose
the precision matching depends on. What is excluded from quantization is
every node on the path from a graph output back to the nearest convolution
or matrix product (the "head"), and:

* ONNX Runtime (QDQ): that convolution too, because QDQ also quantizes a
  quantized node's output;
* OpenVINO (NNCF): not the convolution. NNCF quantizes a convolution's
  inputs and weights only; its output is computed in int32 and leaves in
  float. This matters for speed: EdgePoint's score head is a 1x1
  convolution over 16 full-resolution channels, memory-bound, and reading
  them as int8 instead of float32 takes the int8 forward pass at 640x480
  from about 12.8 to 9.4 ms here (fp32: 12.4 ms).
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from ..paths import cache_dir
from .base import RuntimeUnavailable, first_line
from .calibration import DEFAULT_COUNT, as_network_input, calibration_images

LOG = logging.getLogger(__name__)
# Bump when a recipe changes, so stale cached files are not reused.
RECIPE_VERSION = 3
VARIANT_FILES = {"ort-fp16": "model.onnx", "ort-int8": "model.onnx", "trt-int8": "model.onnx",
                 "ov-fp16": "model.xml", "ov-int8": "model.xml"}
HEAD_STOP_TYPES = {"Conv", "ConvTranspose", "MatMul", "Gemm",  # ONNX
                   "Convolution", "GroupConvolution", "ConvolutionBackpropData"}  # OpenVINO


def variant_for(runtime: str, device: str, precision: str) -> str | None:
    """Which derived file a runtime/device needs for a precision (None: the source)."""
    if precision == "fp32":
        return None
    if runtime == "onnxruntime":
        if device == "tensorrt":
            return "trt-int8" if precision == "int8" else None  # fp16: TensorRT's own mode
        return f"ort-{precision}"
    if runtime == "openvino":
        return f"ov-{precision}"
    raise ValueError(f"no {precision} model variant for runtime {runtime!r}")


def model_for_precision(source: str | os.PathLike, runtime: str, device: str,
                        precision: str) -> Path:
    """The model file to load (see module docstring); makes it when missing."""
    source = Path(source)
    if not source.is_file():
        raise FileNotFoundError(f"model not found: {source}")
    variant = variant_for(runtime, device, precision)
    if variant is None:
        return source
    return derived_model(source, variant)


def source_digest(source: Path) -> str:
    digest = hashlib.sha256()
    with open(source, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def derived_model_path(source: Path, variant: str) -> Path:
    name = f"{source.stem}-{source_digest(source)}-{variant}-r{RECIPE_VERSION}"
    return cache_dir() / "models" / name / VARIANT_FILES[variant]


def derived_model(source: Path, variant: str, calibration_count: int | None = None) -> Path:
    if variant not in VARIANT_FILES:
        raise ValueError(f"unknown model variant {variant!r}; known: {', '.join(VARIANT_FILES)}")
    target = derived_model_path(source, variant)
    if target.is_file():
        return target
    if source.suffix != ".onnx":
        raise ValueError(f"fp16/int8 variants are made from an fp32 .onnx model; got {source.name}")
    makers = {"ort-fp16": _make_ort_fp16, "ort-int8": _make_ort_int8,
              "trt-int8": _make_trt_int8, "ov-fp16": _make_ov_fp16, "ov-int8": _make_ov_int8}
    # Build in a private directory, then rename it into place: a reader never
    # sees half a model, and two processes racing just keep the first result.
    target.parent.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.parent.name}.", dir=target.parent.parent))
    try:
        LOG.info("making %s model from %s (once; cached in %s)", variant, source, target.parent)
        try:
            makers[variant](source, work / target.name, calibration_count or DEFAULT_COUNT)
        except (RuntimeUnavailable, ValueError):
            raise
        except Exception as exc:  # noqa: BLE001 - protobuf, OpenVINO, NNCF: a file they cannot read
            raise ValueError(f"cannot load ONNX model {source} (to make its {variant} model): "
                             f"{first_line(exc)}") from exc
        try:
            os.rename(work, target.parent)
        except OSError:
            if not target.is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


# -- ONNX Runtime ----------------------------------------------------------------
def _require(module: str, purpose: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        raise RuntimeUnavailable(
            f"making the {purpose} model needs the Python package {module.split('.')[0]} "
            f"(training/export install); make it on such a machine with python -m "
            f"edgepoint_ros.runtimes.precision and copy {cache_dir() / 'models'}") from exc


def _make_ort_fp16(source: Path, target: Path, _count: int) -> None:
    onnx = _require("onnx", "fp16 ONNX")
    float16 = _require("onnxruntime.transformers.float16", "fp16 ONNX")
    model = float16.convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    onnx.save(model, str(target))


def _onnx_head_nodes(model) -> list[str]:
    """Names of the ONNX nodes from each graph output back to, and including,
    the nearest conv/matmul."""
    producer = {out: node for node in model.graph.node for out in node.output}
    excluded, stack = set(), [o.name for o in model.graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in excluded:
            continue
        excluded.add(node.name)
        if node.op_type not in HEAD_STOP_TYPES:
            stack.extend(i for i in node.input if i)
    return sorted(excluded)


class _CalibrationReader:
    """onnxruntime.quantization's CalibrationDataReader protocol over our images."""

    def __init__(self, input_name: str, channels: int, count: int):
        self._batches = iter([{input_name: as_network_input(image, channels)}
                              for image in calibration_images(count)])

    def get_next(self):
        return next(self._batches, None)


def _image_input(model) -> tuple[str, int]:
    inputs = [i for i in model.graph.input
              if i.name not in {init.name for init in model.graph.initializer}]
    if len(inputs) != 1:
        raise ValueError(f"INT8 calibration supports networks with one image input; this one "
                         f"has {[i.name for i in inputs]}")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not dims[1].HasField("dim_value"):
        raise ValueError(f"INT8 calibration needs an NCHW image input with a fixed channel "
                         f"count; input {inputs[0].name!r} has shape "
                         f"{[d.dim_value or d.dim_param for d in dims]}")
    return inputs[0].name, int(dims[1].dim_value)


def _quantize_onnx(source: Path, target: Path, count: int, symmetric: bool) -> None:
    onnx = _require("onnx", "int8 ONNX")
    quantization = _require("onnxruntime.quantization", "int8 ONNX")
    model = onnx.load(str(source))
    input_name, channels = _image_input(model)
    reader = _CalibrationReader(input_name, channels, count)
    activation = quantization.QuantType.QInt8 if symmetric else quantization.QuantType.QUInt8
    quantization.quantize_static(
        str(source), str(target), reader, quant_format=quantization.QuantFormat.QDQ,
        per_channel=True, activation_type=activation,
        weight_type=quantization.QuantType.QInt8,
        nodes_to_exclude=_onnx_head_nodes(model),
        extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True})


def _make_ort_int8(source: Path, target: Path, count: int) -> None:
    _quantize_onnx(source, target, count, symmetric=False)


def _make_trt_int8(source: Path, target: Path, count: int) -> None:
    _quantize_onnx(source, target, count, symmetric=True)


# -- OpenVINO ---------------------------------------------------------------------
def _make_ov_fp16(source: Path, target: Path, _count: int) -> None:
    from .openvino_backend import core, import_openvino
    import_openvino().save_model(core().read_model(str(source)), str(target),
                                 compress_to_fp16=True)


def _ov_head_nodes(model) -> list[str]:
    """Names of the OpenVINO nodes from each output back to, not including, the
    nearest convolution/matmul."""
    excluded, stack = set(), [out.get_node() for out in model.outputs]
    while stack:
        node = stack.pop()
        name = node.get_friendly_name()
        if (name in excluded or node.get_type_name() in HEAD_STOP_TYPES
                or node.get_type_name() in ("Parameter", "Constant")):
            continue
        excluded.add(name)
        stack.extend(value.get_node() for value in node.input_values())
    return sorted(excluded)


def _make_ov_int8(source: Path, target: Path, count: int) -> None:
    from .openvino_backend import core, import_openvino
    nncf = _require("nncf", "OpenVINO int8")
    model = core().read_model(str(source))
    if len(model.inputs) != 1:
        raise ValueError("INT8 calibration supports networks with one image input; this one has "
                         f"{[p.get_any_name() for p in model.inputs]}")
    shape = model.inputs[0].get_partial_shape()
    if shape.rank.is_dynamic or shape.rank.get_length() != 4 or shape[1].is_dynamic:
        raise ValueError(f"INT8 calibration needs an NCHW image input with a fixed channel "
                         f"count; got {shape}")
    channels = shape[1].get_length()
    data = [as_network_input(image, channels) for image in calibration_images(count)]
    nncf.set_log_level(logging.ERROR)  # its per-layer INFO lines would drown the node's log
    quantized = nncf.quantize(
        model, nncf.Dataset(data), subset_size=len(data),
        ignored_scope=nncf.IgnoredScope(names=_ov_head_nodes(model), validate=False))
    import_openvino().save_model(quantized, str(target), compress_to_fp16=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edgepoint_ros.runtimes.precision",
        description="Make (and cache) the fp16/int8 version of an fp32 ONNX network.")
    parser.add_argument("model", help="fp32 .onnx file")
    parser.add_argument("--runtime", choices=("onnxruntime", "openvino"), required=True)
    parser.add_argument("--device", default="cpu",
                        help="cpu | cuda | tensorrt (onnxruntime), cpu | gpu | npu (openvino)")
    parser.add_argument("--precision", choices=("fp16", "int8"), required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(model_for_precision(args.model, args.runtime, args.device, args.precision))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
