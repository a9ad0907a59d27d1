"""ONNX Runtime backend (CPU now; CUDA/TensorRT providers are added by the runtime work)."""
from __future__ import annotations

import os

import numpy as np

from .base import InferenceSession, RuntimeUnavailable


class OnnxRuntimeSession(InferenceSession):
    runtime = "onnxruntime"

    def __init__(self, model_path: str, providers: list, num_threads: int = 0,
                 precision: str = "fp32"):
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - depends on install
            raise RuntimeUnavailable(f"onnxruntime is not installed: {exc}") from exc
        if not os.path.isfile(model_path):
            raise FileNotFoundError(f"ONNX model not found: {model_path}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(model_path, sess_options=options,
                                                 providers=providers)
        except Exception as exc:
            raise ValueError(f"cannot load ONNX model {model_path}: {exc}") from exc
        self._model_path = model_path
        self._precision = precision

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self._session.run(None, inputs)
        return dict(zip(self.output_names, values))

    def info(self) -> dict:
        providers = self._session.get_providers()
        device = {"TensorrtExecutionProvider": "tensorrt",
                  "CUDAExecutionProvider": "cuda"}.get(providers[0], "cpu")
        return {"runtime": self.runtime, "device": device, "precision": self._precision,
                "providers": list(providers), "model": self._model_path}

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self._session.get_inputs()]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self._session.get_outputs()]
