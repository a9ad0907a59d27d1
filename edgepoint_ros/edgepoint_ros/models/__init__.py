"""Model registry: `create_model(config)` builds the model a config names.

Each model lives in its own module and registers a builder here. Builders
import their module lazily so that, e.g., the ORB baseline never imports
onnxruntime and nothing at run time imports PyTorch unless runtime='torch'.
"""
from __future__ import annotations

from typing import Callable

from ..config import ExtractorConfig
from .base import FeatureModel, ImageError, as_bgr8

_BUILDERS: dict[str, Callable[[ExtractorConfig], FeatureModel]] = {}


def register(name: str):
    def wrap(builder: Callable[[ExtractorConfig], FeatureModel]):
        _BUILDERS[name] = builder
        return builder
    return wrap


def available_models() -> tuple[str, ...]:
    _load_all()
    return tuple(sorted(_BUILDERS))


def create_model(config: ExtractorConfig) -> FeatureModel:
    """Build the model `config.model` names; raises ValueError naming the problem."""
    config.validate()
    _load_all()
    if config.model not in _BUILDERS:
        raise ValueError(f"unknown model {config.model!r}; available: "
                         f"{', '.join(sorted(_BUILDERS))}")
    return _BUILDERS[config.model](config)


def _load_all() -> None:
    # Importing a model module registers its builder (cheap: heavy imports are inside builders).
    from . import registry_entries  # noqa: F401


__all__ = ["FeatureModel", "ImageError", "as_bgr8", "create_model", "available_models",
           "register"]
