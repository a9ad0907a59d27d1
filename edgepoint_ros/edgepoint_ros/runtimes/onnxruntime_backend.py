"""ONNX Runtime backend: CPU, CUDA and TensorRT execution providers.

Devices and the providers they ask for (in priority order; ONNX Runtime puts
each node on the first provider that can run it):

* ``cpu``      -> CPUExecutionProvider
* ``cuda``     -> CUDAExecutionProvider, CPU
* ``tensorrt`` -> TensorrtExecutionProvider, CUDA, CPU

What runs is read back with ``session.get_providers()`` after the session is
built. ONNX Runtime does not fail when a requested provider cannot load (the
CPU-only wheel, or onnxruntime-gpu without the CUDA/cuDNN/TensorRT libraries):
it logs a warning and quietly runs on the CPU. The session therefore checks
that the provider the device needs is really in use and raises
`RuntimeUnavailable` otherwise, so the caller can fail or fall back
explicitly.

TensorRT engines take seconds to minutes to build, so they are cached on disk
(``<cache>/trt_engines``, together with TensorRT's timing cache) and a cached
engine is reused when the model, shapes and flags match. The first run at a
new input shape builds the engine; `FeatureModel.warmup()` (the extractor
node calls it at start-up) runs frames through first, so that happens before
the first real frame. FP16 on TensorRT is TensorRT's own fp16 mode
on the fp32 graph; INT8 is an explicitly quantized (QDQ, symmetric) graph
with TensorRT's int8 mode on.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ..paths import cache_dir
from .base import InferenceSession, RuntimeUnavailable, first_line

DEVICE_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
DEVICES = tuple(DEVICE_PROVIDERS)
# TensorRT may use up to this much GPU memory as scratch while building engines.
TRT_MAX_WORKSPACE_BYTES = 2 << 30


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeUnavailable(f"onnxruntime is not installed: {exc}") from exc
    return onnxruntime


def available_devices() -> list[str]:
    """Devices whose provider this onnxruntime build offers. Offering is not
    running: the session still checks what it got (see module docstring)."""
    try:
        offered = set(import_onnxruntime().get_available_providers())
    except RuntimeUnavailable:
        return []
    return [device for device, provider in DEVICE_PROVIDERS.items() if provider in offered]


def trt_engine_dir() -> Path:
    path = cache_dir() / "trt_engines"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cuda_provider_options(device_id: int = 0) -> dict:
    return {
        "device_id": str(device_id),
        # cuDNN benchmarks the convolution algorithms once per shape and keeps
        # the fastest (paid during warm-up).
        "cudnn_conv_algo_search": "EXHAUSTIVE",
        "cudnn_conv_use_max_workspace": "1",
        "arena_extend_strategy": "kSameAsRequested",
    }


def tensorrt_provider_options(precision: str, device_id: int = 0) -> dict:
    engines = str(trt_engine_dir())
    return {
        "device_id": str(device_id),
        "trt_fp16_enable": "True" if precision in ("fp16", "int8") else "False",
        # An explicitly quantized (QDQ) graph needs TensorRT's int8 mode; the
        # scales come from the graph, so no calibration table is given.
        "trt_int8_enable": "True" if precision == "int8" else "False",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": engines,
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": engines,
        "trt_max_workspace_size": str(TRT_MAX_WORKSPACE_BYTES),
        "trt_builder_optimization_level": "3",
    }


def provider_list(device: str, precision: str) -> list:
    """The providers (with options) to ask ONNX Runtime for on `device`."""
    cpu = "CPUExecutionProvider"
    if device == "cpu":
        return [cpu]
    cuda = ("CUDAExecutionProvider", cuda_provider_options())
    if device == "cuda":
        return [cuda, cpu]
    if device == "tensorrt":
        return [("TensorrtExecutionProvider", tensorrt_provider_options(precision)), cuda, cpu]
    raise ValueError(f"ONNX Runtime device must be one of {', '.join(DEVICES)}; got {device!r}")


def _preload_gpu_libraries(ort) -> None:
    # onnxruntime-gpu >= 1.21 can load CUDA/cuDNN from the nvidia-* pip wheels
    # or from torch; where the libraries are system-wide (Jetson) this is a no-op.
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        try:
            preload()
        except Exception:  # noqa: BLE001 - best effort; the provider check decides
            pass


class OnnxRuntimeSession(InferenceSession):
    runtime = "onnxruntime"

    def __init__(self, model_path: str, device: str = "cpu", precision: str = "fp32",
                 num_threads: int = 0):
        ort = import_onnxruntime()
        if device not in DEVICE_PROVIDERS:
            raise ValueError(f"ONNX Runtime device must be one of {', '.join(DEVICES)}; "
                             f"got {device!r}")
        if not os.path.isfile(model_path):
            raise FileNotFoundError(f"ONNX model not found: {model_path}")
        if device != "cpu":
            _preload_gpu_libraries(ort)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: the provider check below reports the rest
        try:
            with warnings.catch_warnings():
                # "Specified provider ... is not in available provider names":
                # the check below turns that into a RuntimeUnavailable.
                warnings.simplefilter("ignore", UserWarning)
                self._session = ort.InferenceSession(model_path, sess_options=options,
                                                     providers=provider_list(device, precision))
        except Exception as exc:
            message = first_line(exc)
            if device != "cpu" and _looks_like_provider_failure(message):
                raise RuntimeUnavailable(
                    f"ONNX Runtime could not start {DEVICE_PROVIDERS[device]}: {message}") from exc
            raise ValueError(f"cannot load ONNX model {model_path}: {message}") from exc
        running = self._session.get_providers()
        if DEVICE_PROVIDERS[device] not in running:
            raise RuntimeUnavailable(
                f"ONNX Runtime device {device!r} is not usable here: "
                f"{DEVICE_PROVIDERS[device]} is not running (session providers: "
                f"{', '.join(running)}; this onnxruntime {ort.__version__} offers "
                f"{', '.join(ort.get_available_providers())}). "
                + missing_hint(device))
        self._model_path = model_path
        self._device = device
        self._precision = precision
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._outputs = [o.name for o in self._session.get_outputs()]

    def run(self, inputs: dict[str, np.ndarray], copy: bool = True) -> dict[str, np.ndarray]:
        # `copy` is moot here: every run returns new arrays.
        values = self._session.run(self._outputs, inputs)
        return dict(zip(self._outputs, values))

    def read_info(self) -> dict:
        providers = self._session.get_providers()
        running = next((d for d, p in DEVICE_PROVIDERS.items() if p == providers[0]), "cpu")
        return {"runtime": self.runtime, "device": running, "precision": self._precision,
                "providers": list(providers), "model": self._model_path}


def _looks_like_provider_failure(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in ("cuda", "tensorrt", "cudnn", "provider", "ep_fail",
                                            "libnvinfer"))


def missing_hint(device: str) -> str:
    """What a machine needs for `device` (empty for the CPU)."""
    if device == "cpu":
        return ""
    if device == "cuda":
        return ("Install onnxruntime-gpu (instead of onnxruntime) with CUDA 12 and cuDNN 9 "
                "libraries and an NVIDIA GPU.")
    return ("Install onnxruntime-gpu built with TensorRT, plus the TensorRT 10, CUDA 12 and "
            "cuDNN 9 libraries and an NVIDIA GPU.")
