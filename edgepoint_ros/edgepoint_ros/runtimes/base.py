"""The session interface every runtime backend implements."""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class RuntimeUnavailable(RuntimeError):
    """The requested runtime or device cannot run here (message says why)."""


class InferenceSession(ABC):
    runtime: str = ""

    @abstractmethod
    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model; returns outputs by name."""

    @abstractmethod
    def info(self) -> dict:
        """What actually runs, read from the runtime:
        {'runtime', 'device', 'precision', 'providers' (ORT) or 'execution_devices' (OpenVINO), 'model'}."""

    @property
    @abstractmethod
    def input_names(self) -> list[str]: ...

    @property
    @abstractmethod
    def output_names(self) -> list[str]: ...
