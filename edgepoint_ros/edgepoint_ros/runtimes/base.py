"""The session interface every runtime backend implements, and its errors.

A session is one network opened on one runtime and device. `info()` reports
what actually runs, read back from the runtime after it loaded the model
(ONNX Runtime's `get_providers()`, OpenVINO's `EXECUTION_DEVICES`), never from
what is merely installed.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SessionLayout:
    """What a caller lets a runtime change about the network's input and
    outputs, where the runtime does it inside the compiled network for less
    than numpy pays outside it. Each session says what it took up
    (`takes_bgr8`, `channels_last_outputs`); a runtime that cannot keeps the
    network's own layout.

    `bgr8_image`: the network's `image` is float RGB (N, 3, H, W) in [0, 1];
    the session may take the (N, H, W, 3) uint8 BGR frame instead.
    `channels_last`: names of (N, C, H, W) outputs the session may return as
    (N, H, W, C), the layout a per-keypoint gather reads rows from."""
    bgr8_image: bool = False
    channels_last: tuple[str, ...] = ()


class RuntimeUnavailable(RuntimeError):
    """The requested runtime or device cannot run here (message says why).

    `reasons` lists one line per runtime/device/precision that was tried."""

    def __init__(self, message: str, reasons: list[str] | tuple[str, ...] = ()):
        super().__init__(message)
        self.reasons = list(reasons) or [message]


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first line of a runtime's (often multi-line, C++-traced) error message."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__


class RuntimeFallbackWarning(RuntimeWarning):
    """The requested runtime/device/precision could not run; a fallback runs instead."""


class InferenceSession(ABC):
    runtime: str = ""
    # Set by the selection when this session runs instead of what was asked.
    fallback_reason: str = ""
    # True when the session was asked for (`bgr8_input`) and can take the
    # frame itself, (1, H, W, 3) uint8 BGR, as its `image` input, converting it
    # to the network's float RGB inside the runtime (OpenVINO).
    takes_bgr8: bool = False
    # The outputs this session returns (N, H, W, C) (`SessionLayout.channels_last`).
    channels_last_outputs: frozenset = frozenset()

    @abstractmethod
    def run(self, inputs: dict[str, np.ndarray], copy: bool = True) -> dict[str, np.ndarray]:
        """Run the model; returns outputs by name. With `copy=False` an output
        may be a buffer of the runtime that the next `run` overwrites (no copy
        of it is made): for a caller that is done with it before then."""

    def info(self) -> dict:
        """What actually runs, read from the runtime:
        {'runtime', 'device', 'precision', 'model', plus 'providers' (ONNX Runtime)
        or 'execution_devices' (OpenVINO)}; 'fallback' holds the reason when the
        requested configuration could not run and this one runs instead."""
        info = self.read_info()
        if self.fallback_reason:
            info["fallback"] = self.fallback_reason
        return info

    @abstractmethod
    def read_info(self) -> dict:
        """The backend's part of `info()`, read back from the runtime."""

    # Backends set these to the network's input and output names.
    _inputs: list[str]
    _outputs: list[str]

    @property
    def input_names(self) -> list[str]:
        return list(self._inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)
