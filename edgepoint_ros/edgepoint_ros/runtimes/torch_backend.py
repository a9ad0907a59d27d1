"""PyTorch reference backend: the network's own PyTorch module, same inputs and
outputs as its ONNX graph.

It exists to check the exported graphs and the other runtimes against the
original network, not for speed, and is the only backend that imports torch
(lazily, when a session is created).

The ONNX file cannot be turned back into a module, so the model that opens
the session hands over a factory of its network (`create_session(...,
torch_network=...)`): a callable returning (module, input names, output
names), the module computing what the ONNX export computes. This runtime
knows no model: EdgePoint's and XFeat's factories live with them in
`models/` (`EdgePointModel.torch_network`, `XFeatModel.torch_network`).

Devices: ``cpu`` and ``cuda`` (when torch sees a GPU). Precision: fp32
everywhere and fp16 on CUDA (module in half precision, fp32 at the interface);
there is no INT8 reference.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..config import ExtractorConfig
from .base import InferenceSession, RuntimeUnavailable

DEVICES = ("cpu", "cuda")
TorchNetwork = tuple  # (module, input_names, output_names)
NetworkFactory = Callable[[], TorchNetwork]


def import_torch():
    try:
        import torch
    except ImportError as exc:
        raise RuntimeUnavailable("runtime 'torch' needs PyTorch, which is not installed here "
                                 "(it is the reference runtime; robots use onnxruntime or "
                                 "openvino)") from exc
    return torch


def no_cuda_reason(torch) -> str:
    """Why CUDA cannot be used, for an error message (call when
    torch.cuda.is_available() is false)."""
    return (f"torch {torch.__version__} sees no CUDA GPU "
            f"(CUDA build: {torch.version.cuda or 'no, CPU-only wheel'})")


def available_devices() -> list[str]:
    try:
        torch = import_torch()
    except RuntimeUnavailable:
        return []
    return ["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]


class TorchSession(InferenceSession):
    runtime = "torch"

    def __init__(self, config: ExtractorConfig, network: NetworkFactory | None,
                 device: str = "cpu", precision: str = "fp32"):
        torch = import_torch()
        if network is None:
            raise ValueError(f"runtime 'torch' has no network for model {config.model!r}: only "
                             "a model that hands over its PyTorch network can run on it")
        if device not in DEVICES:
            raise ValueError(f"torch device must be one of {', '.join(DEVICES)}; got {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeUnavailable(no_cuda_reason(torch))
        if precision == "int8" or (precision == "fp16" and device == "cpu"):
            raise RuntimeUnavailable(f"the torch reference runtime has no {precision} on {device}"
                                     " (fp32 everywhere, fp16 on CUDA)")
        module, self._inputs, self._outputs = network()
        if config.num_threads:
            torch.set_num_threads(int(config.num_threads))
        self._dtype = torch.float16 if precision == "fp16" else torch.float32
        self._module = module.to(device=device, dtype=self._dtype).eval()
        self._torch = torch
        self._device = device
        self._precision = precision
        self._weights = config.weights or "shipped"

    def run(self, inputs: dict[str, np.ndarray], copy: bool = True) -> dict[str, np.ndarray]:
        # `copy` is moot here: every run returns new arrays.
        torch = self._torch
        missing = set(self._inputs) - set(inputs)
        if missing:
            raise ValueError(f"missing inputs {sorted(missing)}; the network takes {self._inputs}")
        tensors = [torch.from_numpy(np.ascontiguousarray(inputs[name])).to(
            self._device, self._dtype) for name in self._inputs]
        with torch.inference_mode():
            outputs = self._module(*tensors)
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        return {name: value.float().cpu().numpy() for name, value in zip(self._outputs, outputs)}

    def read_info(self) -> dict:
        parameter = next(self._module.parameters())
        return {"runtime": self.runtime, "device": parameter.device.type,
                "precision": {self._torch.float16: "fp16"}.get(parameter.dtype, "fp32"),
                "torch_version": self._torch.__version__, "model": self._weights}
