"""OpenVINO backend: Intel (and other x86/ARM) CPUs, Intel GPUs and NPUs.

Choices:

* Latency first: ``PERFORMANCE_HINT=LATENCY`` (one stream; a robot processes
  one frame at a time) and, on the CPU, ``INFERENCE_NUM_THREADS`` from the
  config.
* Precision is explicit: ``INFERENCE_PRECISION_HINT`` is ``f32`` for fp32 and
  int8 (otherwise GPUs default to f16 and AMX CPUs to bf16, silently changing
  the numbers) and ``f16`` for fp16. What the compiled model really uses is
  read back; a CPU without fp16 arithmetic reports f32, which the session
  treats as "fp16 unavailable here" (`RuntimeUnavailable`). INT8 needs a
  quantized model (NNCF, see `precision.py`) and a device that lists INT8 in
  ``OPTIMIZATION_CAPABILITIES``. NPUs always compute in reduced precision and
  get no hint.
* Static shapes: a network exported with dynamic height/width is compiled
  for the concrete input shape (5% faster than dynamic on the CPU here, and
  NPUs require it). The first compile, which also proves the device works,
  uses the configured resize size or VGA (480x640), or the dynamic network
  when that size does not suit it; a frame of another size compiles once
  more for that shape (the last few shapes stay compiled).
* Compiled models are cached on disk (``CACHE_DIR``, under the package cache
  directory), so later starts skip most of the compile time.

`info()` reports ``EXECUTION_DEVICES`` and the inference precision read from
the compiled model.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..paths import cache_dir
from .base import InferenceSession, RuntimeUnavailable, SessionLayout, first_line

DEVICE_NAMES = {"cpu": "CPU", "gpu": "GPU", "npu": "NPU"}
DEVICES = tuple(DEVICE_NAMES)
# Input size compiled first for networks with dynamic height/width.
NOMINAL_HEIGHT, NOMINAL_WIDTH = 480, 640
# Compiled shapes kept per session: a camera rarely changes resolution, and an
# EdgePoint pyramid (config.MAX_PYRAMID_LEVELS) needs one shape per level.
MAX_COMPILED_SHAPES = 8

_core = None


def import_openvino():
    try:
        import openvino
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeUnavailable(f"openvino is not installed: {exc}") from exc
    return openvino


def core():
    """The process-wide OpenVINO Core (creating one enumerates devices: slow)."""
    global _core
    if _core is None:
        _core = import_openvino().Core()
    return _core


def available_devices() -> list[str]:
    """Our device names whose OpenVINO plugin finds hardware (GPU.0 -> gpu)."""
    try:
        found = core().available_devices
    except RuntimeUnavailable:
        return []
    families = {name.split(".")[0] for name in found}
    return [device for device, name in DEVICE_NAMES.items() if name in families]


def openvino_cache_dir() -> Path:
    path = cache_dir() / "openvino"
    path.mkdir(parents=True, exist_ok=True)
    return path


def compile_properties(device: str, precision: str, num_threads: int) -> dict:
    props = {"PERFORMANCE_HINT": "LATENCY", "CACHE_DIR": str(openvino_cache_dir())}
    if device in ("cpu", "gpu"):
        props["INFERENCE_PRECISION_HINT"] = "f16" if precision == "fp16" else "f32"
    if device == "cpu" and num_threads:
        props["INFERENCE_NUM_THREADS"] = int(num_threads)
    return props


class OpenVinoSession(InferenceSession):
    runtime = "openvino"

    def __init__(self, model_path: str, device: str = "cpu", precision: str = "fp32",
                 num_threads: int = 0, nominal_size: tuple[int, int] | None = None,
                 layout: SessionLayout = SessionLayout()):
        if device not in DEVICE_NAMES:
            raise ValueError(f"OpenVINO device must be one of {', '.join(DEVICES)}; "
                             f"got {device!r}")
        if not os.path.isfile(model_path):
            raise FileNotFoundError(f"model not found: {model_path}")
        ov_core = core()
        if device not in available_devices():
            raise RuntimeUnavailable(
                f"OpenVINO device {DEVICE_NAMES[device]} is not available here (OpenVINO "
                f"{import_openvino().__version__} finds: {', '.join(ov_core.available_devices)}). "
                + missing_hint(device))
        self._check_capability(device, precision)
        try:
            self._model = ov_core.read_model(model_path)
        except Exception as exc:
            message = first_line(exc)
            raise ValueError(f"cannot load model {model_path} in OpenVINO: {message}") from exc
        self._model_path = model_path
        self._device = device
        self._precision = precision
        self._properties = compile_properties(device, precision, num_threads)
        self._inputs = [port.get_any_name() for port in self._model.inputs]
        self._outputs = [port.get_any_name() for port in self._model.outputs]
        self.takes_bgr8 = layout.bgr8_image and self._is_rgb_image_input()
        self.channels_last_outputs = frozenset(
            port.get_any_name() for port in self._model.outputs
            if port.get_any_name() in layout.channels_last
            and port.get_partial_shape().rank.is_static
            and port.get_partial_shape().rank.get_length() == 4)
        self._dynamic = any(port.get_partial_shape().is_dynamic for port in self._model.inputs)
        self._compiled: OrderedDict[tuple, tuple] = OrderedDict()
        first_shapes = self._nominal_shapes(nominal_size) if self._dynamic else None
        try:
            self._last = self._compile(first_shapes)
        except (RuntimeUnavailable, ValueError):
            if first_shapes is None:
                raise
            # The guessed size does not suit the network (e.g. not a multiple of
            # its stride): compile it dynamic; frames still get static compiles.
            self._last = self._compile(None)
        self._check_precision()

    # -- compiling ---------------------------------------------------------
    def _is_rgb_image_input(self) -> bool:
        """One float input `image` of shape (N, 3, H, W): what `bgr8_image` converts."""
        if self._inputs != ["image"]:
            return False
        port = self._model.inputs[0]
        partial = port.get_partial_shape()
        return (partial.rank.is_static and partial.rank.get_length() == 4
                and partial[1].is_static and partial[1].get_length() == 3
                and port.get_element_type().is_real())

    def _with_layout(self, model):
        """The model with the layouts this session took up, compiled into the
        network by OpenVINO's pre/post-processing:

        * `takes_bgr8`: it takes (N, H, W, 3) uint8 BGR frames (element type,
          layout, channel order and 1/255 scale inside the network instead of a
          float32 RGB copy of every frame made in numpy: about 1.3 ms of a
          640x480 frame here);
        * `channels_last_outputs`: those outputs leave (N, H, W, C), the layout
          the CPU plugin computes in, so the reorder it would make to NCHW and
          the transpose numpy would make back are both saved (0.4 ms of the
          small EdgePoint's descriptor map at 640x480)."""
        from openvino import Layout, Type
        from openvino.preprocess import ColorFormat, PrePostProcessor
        ppp = PrePostProcessor(model)
        if self.takes_bgr8:
            image = ppp.input("image")
            image.tensor().set_element_type(Type.u8).set_layout(Layout("NHWC")) \
                .set_color_format(ColorFormat.BGR)
            image.preprocess().convert_element_type(Type.f32).convert_color(ColorFormat.RGB) \
                .scale(255.0)
            image.model().set_layout(Layout("NCHW"))
        for name in sorted(self.channels_last_outputs):
            output = ppp.output(name)
            output.model().set_layout(Layout("NCHW"))
            output.tensor().set_layout(Layout("NHWC"))
        return ppp.build()

    def _nominal_shapes(self, nominal_size) -> dict[str, list[int]] | None:
        height, width = nominal_size or (NOMINAL_HEIGHT, NOMINAL_WIDTH)
        shapes = {}
        for port in self._model.inputs:
            partial = port.get_partial_shape()
            if partial.rank.is_dynamic or partial.rank.get_length() != 4 or partial[1].is_dynamic:
                return None  # not an image tensor we can guess: compile dynamic
            shapes[port.get_any_name()] = [1, partial[1].get_length(), height, width]
        return shapes

    def _compile(self, shapes: dict[str, list[int]] | None):
        key = tuple(sorted((k, tuple(v)) for k, v in shapes.items())) if shapes else ()
        if key in self._compiled:
            self._compiled.move_to_end(key)
            return self._compiled[key]
        model = self._model
        relayout = self.takes_bgr8 or bool(self.channels_last_outputs)
        if shapes or relayout:
            model = self._model.clone()
        if shapes:
            try:
                model.reshape(shapes)
            except Exception as exc:
                raise ValueError(f"{self._model_path} cannot take input shapes {shapes}: "
                                 f"{first_line(exc, 200)}") from exc
        if relayout:
            model = self._with_layout(model)
        try:
            compiled = core().compile_model(model, DEVICE_NAMES[self._device], self._properties)
        except Exception as exc:
            message = first_line(exc)
            raise RuntimeUnavailable(
                f"OpenVINO could not compile {self._model_path} for {DEVICE_NAMES[self._device]}: "
                f"{message}") from exc
        entry = (compiled, compiled.create_infer_request())
        self._compiled[key] = entry
        while len(self._compiled) > MAX_COMPILED_SHAPES:
            self._compiled.popitem(last=False)
        return entry

    @staticmethod
    def _check_capability(device: str, precision: str) -> None:
        if precision == "fp32" or device == "npu":
            return
        capabilities = core().get_property(DEVICE_NAMES[device], "OPTIMIZATION_CAPABILITIES")
        needed = {"fp16": "FP16", "int8": "INT8"}[precision]
        if needed not in capabilities:
            raise RuntimeUnavailable(
                f"OpenVINO {DEVICE_NAMES[device]} has no {precision} support here "
                f"(OPTIMIZATION_CAPABILITIES: {', '.join(capabilities)})")

    def _check_precision(self) -> None:
        if self._precision == "fp16" and self._device != "npu":
            actual = self._inference_precision()
            if actual not in ("f16", "float16"):
                raise RuntimeUnavailable(
                    f"OpenVINO {DEVICE_NAMES[self._device]} computes in {actual} here, not fp16 "
                    "(this CPU has no fp16 arithmetic: AVX512-FP16 or AMX-FP16 is needed)")

    def _inference_precision(self) -> str:
        try:
            value = self._last[0].get_property("INFERENCE_PRECISION_HINT")
        except Exception:  # noqa: BLE001 - NPU plugins may not expose it
            return "unknown"
        return getattr(value, "get_type_name", lambda: str(value))()

    # -- running -------------------------------------------------------------
    def run(self, inputs: dict[str, np.ndarray], copy: bool = True) -> dict[str, np.ndarray]:
        compiled, request = self._last
        if self._dynamic:
            shapes = {name: list(np.shape(value)) for name, value in inputs.items()}
            if self.takes_bgr8:     # frames come NHWC; the network's shapes are NCHW
                shapes = {name: [n, c, h, w] for name, (n, h, w, c) in shapes.items()}
            compiled, request = self._last = self._compile(shapes)
        # The input arrays are read in place (no copy). The outputs are the
        # request's own buffers, which it reuses on the next run: copied unless
        # the caller says it is done with them before then.
        results = request.infer(inputs, share_inputs=True, share_outputs=True)
        outputs = {name: results[compiled.output(name)] for name in self._outputs}
        return {name: np.array(value) for name, value in outputs.items()} if copy else outputs

    def read_info(self) -> dict:
        compiled = self._last[0]
        executing = list(compiled.get_property("EXECUTION_DEVICES"))
        family = executing[0].split(".")[0] if executing else ""
        device = next((d for d, name in DEVICE_NAMES.items() if name == family), family.lower())
        return {"runtime": self.runtime, "device": device, "precision": self._precision,
                "execution_devices": executing,
                "inference_precision": self._inference_precision(),
                "model": self._model_path}


def missing_hint(device: str) -> str:
    """What a machine needs for `device` (empty for the CPU)."""
    if device == "gpu":
        return "An Intel GPU with its compute runtime (intel-opencl-icd / level-zero) is needed."
    if device == "npu":
        return "An Intel NPU (Core Ultra) with the intel-npu driver is needed."
    return ""
