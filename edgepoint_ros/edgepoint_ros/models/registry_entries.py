"""Builders for every model; each imports its implementation only when called."""
from __future__ import annotations

from ..config import ExtractorConfig
from . import register


@register("orb")
def _orb(config: ExtractorConfig):
    from .opencv_baselines import OpenCVModel
    return OpenCVModel("orb", config)


@register("sift")
def _sift(config: ExtractorConfig):
    from .opencv_baselines import OpenCVModel
    return OpenCVModel("sift", config)


@register("xfeat")
def _xfeat(config: ExtractorConfig):
    from .xfeat import XFeatModel
    return XFeatModel(config)


@register("edgepoint")
def _edgepoint(config: ExtractorConfig):
    from .edgepoint import EdgePointModel
    return EdgePointModel(config)
