"""Choosing the runtime, device and precision a config asks for.

Candidates. ``device=auto`` tries, in this order, the first that opens wins:

    1. onnxruntime / tensorrt   NVIDIA GPU, TensorRT engine (fastest on Jetson/dGPU)
    2. onnxruntime / cuda       NVIDIA GPU, cuDNN kernels
    3. openvino / gpu           Intel integrated/discrete GPU
    4. openvino / npu           Intel NPU (Core Ultra)
    5. openvino / cpu           any x86 CPU (ARM too)
    6. onnxruntime / cpu        everywhere onnxruntime runs

GPUs come before CPUs because a network this size is memory-bound at full
resolution and any of them beats a CPU; TensorRT before plain CUDA because it
fuses the whole graph. OpenVINO's CPU plugin comes before ONNX Runtime's
because it is faster for EdgePoint on the development machine (2 threads,
640x480, `benchmark` command, 2026-11-26: forward 12.4 vs 15.9 ms, whole
extraction 15.7 vs 19.3 ms in fp32; the architecture notes measured 27 vs
41 ms for the forward pass on a busier day) and because its INT8 path (NNCF)
is the fastest configuration there (9.1 ms whole extraction), while ONNX
Runtime's INT8 (22.5 ms) is slower than its fp32 on CPUs without VNNI. ONNX Runtime's CPU provider is
the last resort because it is always there. `runtime=onnxruntime|openvino` keeps the order but only that runtime's
devices; `runtime=torch` (the PyTorch reference) is never chosen by auto.

An explicit device (``cpu``, ``cuda``, ``tensorrt``, ``gpu``, ``npu``) is
tried on the runtimes that offer it (for ``cpu`` with ``runtime=auto``:
OpenVINO, then ONNX Runtime). When it cannot run, ``fallback=False`` raises
`RuntimeUnavailable` naming every reason; ``fallback=True`` warns
(`RuntimeFallbackWarning`, also logged) and runs on the CPU, keeping the
runtime when one was named. A precision the runtime cannot honour (e.g.
fp16 on a CPU without fp16 arithmetic) is handled the same way, the last
fallback being fp32. The session's `info()` then carries ``fallback`` with
the reason, and says what runs as read from the runtime.

A model file that is missing or not a valid network is not a device problem:
it raises FileNotFoundError/ValueError at once, whatever `fallback` says.
"""
from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass

from ..config import ExtractorConfig
from .base import InferenceSession, RuntimeFallbackWarning, RuntimeUnavailable, SessionLayout

LOG = logging.getLogger(__name__)

AUTO_ORDER = (
    ("onnxruntime", "tensorrt"),
    ("onnxruntime", "cuda"),
    ("openvino", "gpu"),
    ("openvino", "npu"),
    ("openvino", "cpu"),
    ("onnxruntime", "cpu"),
)
RUNTIME_DEVICES = {
    "onnxruntime": ("cpu", "cuda", "tensorrt"),
    "openvino": ("cpu", "gpu", "npu"),
    "torch": ("cpu", "cuda"),
}


@dataclass(frozen=True)
class Choice:
    runtime: str
    device: str
    precision: str

    def __str__(self) -> str:
        return f"{self.runtime}/{self.device}/{self.precision}"


def candidate_pairs(runtime: str, device: str) -> list[tuple[str, str]]:
    """(runtime, device) pairs to try, best first, for a config's runtime and device."""
    if runtime == "torch":
        devices = ("cuda", "cpu") if device == "auto" else (device,)
        pairs = [("torch", d) for d in devices]
    elif runtime == "auto":
        pairs = [p for p in AUTO_ORDER if device in ("auto", p[1])]
    else:
        pairs = [p for p in AUTO_ORDER if p[0] == runtime and device in ("auto", p[1])]
    if not pairs:
        offered = {r: d for r, d in RUNTIME_DEVICES.items() if device in d}
        raise ValueError(f"runtime {runtime!r} has no device {device!r}: {runtime} offers "
                         f"{', '.join(RUNTIME_DEVICES.get(runtime, ()))}; device {device!r} "
                         f"is offered by {', '.join(offered) or 'no runtime'}")
    return pairs


def fallback_pairs(runtime: str) -> list[tuple[str, str]]:
    """The CPU pairs a fallback may use: the named runtime's CPU, else the auto CPU order."""
    return [p for p in candidate_pairs(runtime, "auto") if p[1] == "cpu"]


def plan(config: ExtractorConfig) -> tuple[list[Choice], list[Choice]]:
    """(choices to try as asked, fallback choices) for a config."""
    asked = [Choice(r, d, config.precision) for r, d in candidate_pairs(config.runtime,
                                                                        config.device)]
    if not config.fallback:
        return asked, []
    fallbacks = [Choice(r, d, config.precision) for r, d in fallback_pairs(config.runtime)]
    if config.precision != "fp32":
        fallbacks += [Choice(r, d, "fp32") for r, d in fallback_pairs(config.runtime)]
    return asked, [c for c in fallbacks if c not in asked]


def open_session(model_path: str, config: ExtractorConfig,
                 torch_network=None, layout: SessionLayout = SessionLayout()
                 ) -> InferenceSession:
    config.validate()
    if not os.path.isfile(model_path):
        raise FileNotFoundError(f"model not found: {model_path}")
    asked, fallbacks = plan(config)
    reasons: list[str] = []
    for index, choice in enumerate(asked + fallbacks):
        try:
            session = open_choice(model_path, config, choice, torch_network, layout)
        except RuntimeUnavailable as exc:
            reasons.append(f"{choice}: {exc}")
            LOG.debug("runtime choice %s unavailable: %s", choice, exc)
            continue
        if index >= len(asked):
            reason = (f"requested runtime={config.runtime} device={config.device} "
                      f"precision={config.precision} cannot run here ({'; '.join(reasons)}); "
                      f"falling back to {choice}")
            warnings.warn(reason, RuntimeFallbackWarning, stacklevel=3)
            LOG.warning(reason)
            session.fallback_reason = reason
        return session
    raise RuntimeUnavailable(
        f"runtime={config.runtime} device={config.device} precision={config.precision} "
        f"cannot run here{' (fallback=false)' if not config.fallback else ''}: "
        + "; ".join(reasons), reasons)


def open_choice(model_path: str, config: ExtractorConfig, choice: Choice,
                torch_network=None, layout: SessionLayout = SessionLayout()
                ) -> InferenceSession:
    """Open one runtime/device/precision; RuntimeUnavailable when it cannot run here."""
    if choice.runtime == "torch":
        from .torch_backend import TorchSession
        return TorchSession(config, torch_network, choice.device, choice.precision)
    from .precision import model_for_precision
    if choice.runtime == "onnxruntime":
        from .onnxruntime_backend import OnnxRuntimeSession, available_devices, missing_hint
        _require_device(choice, available_devices(), missing_hint(choice.device))
        path = model_for_precision(model_path, choice.runtime, choice.device, choice.precision)
        return OnnxRuntimeSession(str(path), choice.device, choice.precision, config.num_threads)
    if choice.runtime == "openvino":
        from .openvino_backend import OpenVinoSession
        from .openvino_backend import available_devices as openvino_devices
        from .openvino_backend import missing_hint as openvino_hint
        _require_device(choice, openvino_devices(), openvino_hint(choice.device))
        path = model_for_precision(model_path, choice.runtime, choice.device, choice.precision)
        nominal = ((config.resize_height, config.resize_width) if config.resize_width else None)
        return OpenVinoSession(str(path), choice.device, choice.precision, config.num_threads,
                               nominal, layout=layout)
    raise ValueError(f"unknown runtime {choice.runtime!r}")


def _require_device(choice: Choice, offered: list[str], hint: str) -> None:
    # A cheap check before any model conversion; the session still verifies
    # what really runs after loading.
    if choice.device not in offered:
        raise RuntimeUnavailable(
            f"{choice.runtime} offers no {choice.device!r} device here (offers: "
            f"{', '.join(offered) or 'nothing: not installed'}). {hint}".strip())
