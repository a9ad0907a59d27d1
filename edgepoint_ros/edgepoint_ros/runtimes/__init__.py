"""Inference runtimes behind one interface.

`create_session(model_path, config)` opens an ONNX model on the runtime and
device the config asks for and returns an `InferenceSession`. Models call
`session.run({"image": array})` and never touch a runtime API directly;
`session.info()` says what actually runs, as read back from the runtime.
"""
from __future__ import annotations

from ..config import ExtractorConfig
from .base import InferenceSession, RuntimeUnavailable


def create_session(model_path: str, config: ExtractorConfig,
                   torch_network=None, bgr8_input: bool = False) -> InferenceSession:
    """Open `model_path` (ONNX) on the runtime/device/precision `config` asks
    for, with fallback as it says. `torch_network`: the model's factory of the
    same network as a PyTorch module, for the torch reference runtime.
    `bgr8_input`: the network's `image` is float RGB (N, 3, H, W) in [0, 1];
    let a runtime that can take the uint8 BGR frame instead do so
    (`session.takes_bgr8` says whether this one does)."""
    from .selection import open_session
    return open_session(model_path, config, torch_network, bgr8_input)


__all__ = ["InferenceSession", "RuntimeUnavailable", "create_session"]
