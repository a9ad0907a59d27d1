"""Choosing the runtime and device a config asks for.

Minimal for now: ONNX Runtime on the CPU. The runtime work extends this with
CUDA/TensorRT, OpenVINO CPU/GPU/NPU, PyTorch and the `auto` order.
"""
from __future__ import annotations

from ..config import ExtractorConfig
from .base import InferenceSession, RuntimeUnavailable


def open_session(model_path: str, config: ExtractorConfig) -> InferenceSession:
    runtime = "onnxruntime" if config.runtime == "auto" else config.runtime
    device = "cpu" if config.device == "auto" else config.device
    if runtime != "onnxruntime" or device != "cpu":
        message = f"runtime={config.runtime} device={config.device} is not supported yet"
        if not config.fallback:
            raise RuntimeUnavailable(message)
    from .onnxruntime_backend import OnnxRuntimeSession
    return OnnxRuntimeSession(model_path, ["CPUExecutionProvider"], config.num_threads,
                              config.precision)
