"""Inference runtimes behind one interface.

`create_session(model_path, config)` opens an ONNX model on the runtime and
device the config asks for and returns an `InferenceSession`. Models call
`session.run({"image": array})` and never touch a runtime API directly;
`session.info()` says what actually runs, as read back from the runtime.
"""
from __future__ import annotations

from ..config import ExtractorConfig
from .base import InferenceSession, RuntimeUnavailable, SessionLayout


def create_session(model_path: str, config: ExtractorConfig,
                   torch_network=None, layout: SessionLayout = SessionLayout()
                   ) -> InferenceSession:
    """Open `model_path` (ONNX) on the runtime/device/precision `config` asks
    for, with fallback as it says. `torch_network`: the model's factory of the
    same network as a PyTorch module, for the torch reference runtime.
    `layout`: the input and output layouts a runtime may change where it can
    (`SessionLayout`; the session says which it did)."""
    from .selection import open_session
    return open_session(model_path, config, torch_network, layout)


__all__ = ["InferenceSession", "RuntimeUnavailable", "SessionLayout", "create_session"]
