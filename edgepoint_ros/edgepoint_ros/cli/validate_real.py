"""The real-data validation set: where checkpoints and settings are chosen.

    validate_real [--methods anchors|MODEL,LABEL:MODEL,...] [--checkpoint [LABEL=]PATH ...]
                  [--weights METHOD=PATH ...] [--set METHOD.FIELD=VALUE ...]
                  [--authors-settings METHOD ...] [--runtime R] [--device D]
                  [--stereo aloe,motorcycle,chessboard] [--videos Megamind.avi,vtest.avi|none]
                  [--max-frames N] [--resamples N] [--out DIR]

Methods are named as in `evaluate` (the same parser and settings code): a
model, LABEL:MODEL, or `anchors` (the authors' released weights, our medium,
small and tiny, XFeat, ORB, SIFT; the default). `--checkpoint PATH` adds a
training checkpoint (.pt) as an EdgePoint method, e.g. to compare training
runs: `validate_real --methods medium:edgepoint --checkpoint
runs/x/checkpoint_03000.pt --set medium.model_size=medium`. Every method
starts from `real_validation.VALIDATION_SETTINGS` (1000 keypoints, one level,
FP32), then the same overrides as `evaluate`.

The sets and metrics are in `edgepoint_ros.evaluation.real_validation`: the
disparity pairs (aloe, motorcycle), the 13 calibrated chessboard pairs, and
the choosing videos (Megamind.avi, vtest.avi; tree.avi is reporting only and
refused). Prints a markdown table (score with its bootstrap std, per group
precision at 1/3/5 px and matching score, video match_prec / outlier_prec)
and whether each step of the ranking is beyond the set's noise; writes
OUT/results.json and OUT/results.md. Exit status 2 when a method cannot be
built or a set is missing (nothing is run then).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from ..evaluation.real_validation import CHOOSING_VIDEOS, RESAMPLES, STEREO_SOURCES
    parser = argparse.ArgumentParser(prog="validate_real", description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="anchors",
                        help="comma-separated MODEL, LABEL:MODEL or `anchors` (default anchors)")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="[LABEL=]PATH",
                        help="an EdgePoint method with these weights, e.g. a training "
                             "checkpoint (repeatable)")
    parser.add_argument("--weights", action="append", default=[], metavar="METHOD=PATH")
    parser.add_argument("--set", dest="settings", action="append", default=[],
                        metavar="METHOD.FIELD=VALUE")
    parser.add_argument("--authors-settings", action="append", default=[], metavar="METHOD")
    parser.add_argument("--runtime", default=None, help="runtime of the learned models")
    parser.add_argument("--device", default=None, help="device of the learned models")
    parser.add_argument("--stereo", default=",".join(STEREO_SOURCES),
                        help=f"stereo sources (default {','.join(STEREO_SOURCES)}; none = no pairs)")
    parser.add_argument("--videos", default=",".join(CHOOSING_VIDEOS),
                        help=f"choosing videos (default {','.join(CHOOSING_VIDEOS)}; none = no video)")
    parser.add_argument("--max-frames", type=int, default=None,
                        help="at most this many frames of each video (default: the set's own)")
    parser.add_argument("--resamples", type=int, default=RESAMPLES, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--out", type=Path, default=Path("artifacts/validate_real"))
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def _names(text: str) -> list[str]:
    return [] if text.strip().lower() == "none" else [t.strip() for t in text.split(",") if t.strip()]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..evaluation.real_validation import (CHOOSING_VIDEOS, REPORTING_ONLY_VIDEOS,
                                              VALIDATION_SETTINGS, evaluate_real, format_table,
                                              load_stereo_pairs)
    from ..evaluation.report import json_safe
    from ..models import create_model
    from .evaluate import expand_methods, method_configs, parse_methods

    try:
        if args.resamples < 1:
            raise ValueError(f"--resamples must be >= 1; got {args.resamples}")
        videos = {}
        for name in _names(args.videos):
            if name in REPORTING_ONLY_VIDEOS:
                raise ValueError(f"{name} is kept for reporting only; never choose on it")
            frames = dict(CHOOSING_VIDEOS.get(name, {"stride": 1, "max_frames": 0}))
            if args.max_frames is not None:
                frames["max_frames"] = args.max_frames
            videos[name] = frames
        pairs, missing = load_stereo_pairs(_names(args.stereo))
        if missing:
            raise FileNotFoundError("; ".join(f"{k}: {v}" for k, v in missing.items()))
        if not pairs and not videos:
            raise ValueError("nothing to evaluate: no stereo pairs and no videos")
        methods, weights, settings = expand_methods(args.methods, args.weights, args.settings,
                                                    args.checkpoint)
        configs = method_configs(parse_methods(methods), weights, settings, args.runtime,
                                 args.device, args.authors_settings, base=VALIDATION_SETTINGS)
        models = {}
        for label, config in configs.items():
            try:
                models[label] = create_model(config)
            except (ValueError, FileNotFoundError, RuntimeError) as exc:
                raise ValueError(f"method {label}: {exc}") from exc
    except (ValueError, FileNotFoundError) as exc:
        print(f"validate_real: {exc}", file=sys.stderr)
        return 2

    progress = None if args.quiet else (
        lambda what: print(f"validate_real: {what}", file=sys.stderr, flush=True)
        if "frame" not in what or what.endswith("0") else None)
    started = time.time()
    result = evaluate_real(models, pairs, videos, resamples=args.resamples, seed=args.seed,
                           progress=progress)
    table = format_table(result)
    print(table)
    report = result.as_dict()
    for label, config in configs.items():
        report["methods"][label]["settings"] = config.as_dict()
    report.update({"date": time.strftime("%Y-%m-%d %H:%M:%S"),
                   "seconds": round(time.time() - started, 1)})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(json_safe(report), indent=1))
    (args.out / "results.md").write_text(table + "\n")
    print(f"validate_real: wrote {args.out / 'results.json'}, results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
