"""Homography benchmark of several methods in one run (Oxford affine protocol).

    evaluate [--methods edgepoint,xfeat,orb,sift|anchors] [--weights METHOD=PATH ...]
             [--checkpoint [LABEL=]PATH ...]
             [--set METHOD.FIELD=VALUE ...] [--authors-settings METHOD ...]
             [--data DIR] [--out DIR]
             [--runtime R] [--device D] [--ransac-trials N]
             [--sequences graf,boat] [--targets 2,3]

A method is a model name, or LABEL:MODEL to run one model twice with different
settings, e.g. `--methods edgepoint,released:edgepoint,xfeat,orb,sift
--weights released=../shared/models/edgepoint-official/EdgePoint.pt`. The
word `anchors` in --methods stands for the anchors every comparison shows
(ANCHORS: the authors' released weights, our medium, small and tiny, XFeat,
ORB, SIFT); `--checkpoint [LABEL=]PATH` adds an EdgePoint method with those
weights (a training checkpoint .pt, or .onnx; LABEL defaults to the file's
stem). Each
method starts from the protocol settings of its model
(`evaluation.homography.PROTOCOL_SETTINGS`; for EdgePoint the ones chosen for
the shipped weights on the held-out validation set), then `--authors-settings`
(an EdgePoint method detects as the EdgePoint authors evaluate their released
weights: threshold 0.5, one pyramid level), then `--runtime/--device`, then
its `--weights` and `--set` values. `--data` takes any folder in the Oxford
layout, e.g. the held-out validation set of `make_validation_set`.

Prints a table and writes OUT/results.json (protocol, settings, runtime,
summary and per-pair numbers of every method), OUT/results.md (the table) and
OUT/results.png (MHA curves and bars). Exit status 2 when a method cannot be
set up (nothing is run then).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ..config import MODELS, ExtractorConfig
from .extractor_settings import parse_value

DEFAULT_METHODS = "edgepoint,xfeat,orb,sift"
DATA_ENV = "EDGEPOINT_ROS_OXFORD"
RELEASED_ENV = "EDGEPOINT_ROS_RELEASED_WEIGHTS"
# The anchors every comparison shows: label -> (model, settings). "released"
# gets the authors' checkpoint (released_weights_path()); our three sizes run
# their shipped weights.
ANCHORS: dict[str, tuple[str, dict]] = {
    "released": ("edgepoint", {"model_size": "medium"}),
    "medium": ("edgepoint", {"model_size": "medium"}),
    "small": ("edgepoint", {"model_size": "small"}),
    "tiny": ("edgepoint", {"model_size": "tiny"}),
    "xfeat": ("xfeat", {}),
    "orb": ("orb", {}),
    "sift": ("sift", {}),
}


def _shared_path(*parts: str) -> Path:
    """../shared/PARTS next to the working directory or the repository."""
    from ..paths import PACKAGE_DIR
    relative = Path("..", "shared", *parts)
    candidates = [Path.cwd() / relative, PACKAGE_DIR.parents[1] / relative]
    return next((c for c in candidates if c.exists()), candidates[0])


def released_weights_path() -> Path:
    """The authors' released EdgePoint.pt: $EDGEPOINT_ROS_RELEASED_WEIGHTS, else
    ../shared/models/edgepoint-official/EdgePoint.pt."""
    if os.environ.get(RELEASED_ENV):
        return Path(os.environ[RELEASED_ENV])
    return _shared_path("models", "edgepoint-official", "EdgePoint.pt")


def expand_methods(text: str, weights: list[str], settings: list[str],
                   checkpoints: list[str] = ()) -> tuple[str, list[str], list[str]]:
    """(--methods, --weights, --set) with the word `anchors` replaced by ANCHORS
    and each `--checkpoint [LABEL=]PATH` appended as LABEL:edgepoint with those
    weights. The anchors' own weights and settings come first, so a --weights
    or --set given for an anchor label overrides them."""
    items = [part.strip() for part in text.split(",") if part.strip()]
    own_weights, own_settings = [], []
    if "anchors" in items:
        at = items.index("anchors")
        items[at:at + 1] = [f"{label}:{model}" for label, (model, _) in ANCHORS.items()]
        own_weights.append(f"released={released_weights_path()}")
        own_settings += [f"{label}.{field}={value}" for label, (_, values) in ANCHORS.items()
                         for field, value in values.items()]
    for text_ in checkpoints:
        label, sep, path = text_.rpartition("=")
        label = label if sep else Path(path).stem
        if not label or not path:
            raise ValueError(f"--checkpoint {text_!r}: expected [LABEL=]PATH")
        items.append(f"{label}:edgepoint")
        own_weights.append(f"{label}={path}")
    return ",".join(items), own_weights + list(weights), own_settings + list(settings)


def default_data_dir() -> Path:
    """$EDGEPOINT_ROS_OXFORD, else ../shared/data/oxford-affine next to the
    working directory or the repository."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    return _shared_path("data", "oxford-affine")


def parse_methods(text: str) -> dict[str, str]:
    """'a,label:model' -> {label: model}, in order."""
    methods: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        label, _, model = item.rpartition(":")
        label = label or model
        if model not in MODELS:
            raise ValueError(f"method {item!r}: unknown model {model!r}; models: "
                             f"{', '.join(MODELS)}")
        if label in methods:
            raise ValueError(f"method label {label!r} given twice; use LABEL:MODEL to tell "
                             "runs of one model apart")
        methods[label] = model
    if not methods:
        raise ValueError("no methods given")
    return methods


def method_configs(methods: dict[str, str], weights: list[str], settings: list[str],
                   runtime: str | None, device: str | None,
                   authors_settings: list[str] = (),
                   base: dict[str, dict] | None = None) -> dict[str, ExtractorConfig]:
    """One ExtractorConfig per method: `base` settings of its model (default
    the Oxford protocol's, PROTOCOL_SETTINGS), then the authors' settings,
    runtime/device, weights and --set values."""
    from ..evaluation.homography import AUTHORS_EDGEPOINT_SETTINGS, PROTOCOL_SETTINGS
    base = PROTOCOL_SETTINGS if base is None else base
    values = {label: {"model": model, **base.get(model, {})}
              for label, model in methods.items()}
    for label in authors_settings:
        if methods.get(label) != "edgepoint":
            edgepoints = [name for name, model in methods.items() if model == "edgepoint"]
            raise ValueError(f"--authors-settings {label!r}: expected an EdgePoint method "
                             f"({', '.join(edgepoints) or 'none given'})")
        values[label].update(AUTHORS_EDGEPOINT_SETTINGS)
    for label, model in methods.items():
        if model not in ("orb", "sift"):
            if runtime:
                values[label]["runtime"] = runtime
            if device:
                values[label]["device"] = device
    for text in weights:
        label, sep, path = text.partition("=")
        if not sep or label not in values:
            raise ValueError(f"--weights {text!r}: expected METHOD=PATH with METHOD one of "
                             f"{', '.join(values)}")
        values[label]["weights"] = path
    for text in settings:
        target, sep, value = text.partition("=")
        label, dot, field = target.partition(".")
        if not sep or not dot or label not in values:
            raise ValueError(f"--set {text!r}: expected METHOD.FIELD=VALUE with METHOD one of "
                             f"{', '.join(values)}")
        if field == "model":
            raise ValueError("--set cannot change a method's model; use LABEL:MODEL in --methods")
        values[label][field] = parse_value(field, value)
    return {label: ExtractorConfig.from_mapping(v) for label, v in values.items()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=DEFAULT_METHODS,
                        help=f"comma-separated MODEL or LABEL:MODEL, or `anchors` "
                             f"(default {DEFAULT_METHODS})")
    parser.add_argument("--weights", action="append", default=[], metavar="METHOD=PATH")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="[LABEL=]PATH",
                        help="an EdgePoint method with these weights (repeatable)")
    parser.add_argument("--set", dest="settings", action="append", default=[],
                        metavar="METHOD.FIELD=VALUE")
    parser.add_argument("--authors-settings", action="append", default=[], metavar="METHOD",
                        help="EdgePoint METHOD with its authors' detection settings "
                             "(threshold 0.5, no pyramid)")
    parser.add_argument("--runtime", default=None, help="runtime of the learned models")
    parser.add_argument("--device", default=None, help="device of the learned models")
    parser.add_argument("--data", type=Path, default=None,
                        help=f"benchmark folder (default ${DATA_ENV} or ../shared/data/oxford-affine)")
    parser.add_argument("--out", type=Path, default=Path("artifacts/eval"))
    parser.add_argument("--ransac-trials", type=int, default=10,
                        help="RANSAC runs per pair on shuffled match orders for the spread "
                             "(1 = protocol run only)")
    parser.add_argument("--sequences", default=None, help="subset, e.g. graf,boat")
    parser.add_argument("--targets", default=None, help="subset of K in img1->imgK, e.g. 2,3")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..evaluation.homography import (AUTHORS_EDGEPOINT_SETTINGS, PROTOCOL_SETTINGS,
                                         evaluate_model, load_oxford_pairs)
    from ..evaluation.report import format_table, json_safe, plot_results
    from ..models import create_model

    data = args.data or default_data_dir()
    try:
        if args.ransac_trials < 1:
            raise ValueError(f"--ransac-trials must be >= 1; got {args.ransac_trials}")
        pairs = load_oxford_pairs(
            data, args.sequences.split(",") if args.sequences else None,
            [int(k) for k in args.targets.split(",")] if args.targets else None)
        methods, weights, settings = expand_methods(args.methods, args.weights, args.settings,
                                                    args.checkpoint)
        configs = method_configs(parse_methods(methods), weights, settings,
                                 args.runtime, args.device, args.authors_settings)
        models = {}
        for label, config in configs.items():
            try:
                models[label] = create_model(config)
            except (ValueError, FileNotFoundError, RuntimeError) as exc:
                raise ValueError(f"method {label}: {exc}") from exc
    except (ValueError, FileNotFoundError) as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2

    from tqdm import tqdm
    results: dict[str, dict] = {}
    images: dict = {}
    for label, model in models.items():
        with tqdm(total=len(pairs), desc=f"evaluate {label}", unit="pair", disable=args.quiet,
                  file=sys.stderr) as bar:
            result = evaluate_model(model, pairs, ransac_trials=args.ransac_trials,
                                    image_cache=images, progress=lambda _: bar.update())
        result["model"] = configs[label].model
        result["settings"] = configs[label].as_dict()
        result["runtime"] = model.runtime_info()
        results[label] = result

    table = format_table(results)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "oxford-affine homography",
        "data": str(Path(data).resolve()),
        "protocol": {"matching": "mutual nearest neighbour, no ratio test",
                     "homography": "cv2.findHomography RANSAC, 3 px",
                     "mha_thresholds_px": [1, 3, 5], "mma_threshold_px": 3,
                     "ransac_trials": args.ransac_trials,
                     "protocol_settings": PROTOCOL_SETTINGS,
                     "authors_edgepoint_settings": AUTHORS_EDGEPOINT_SETTINGS},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "methods": results,
    }
    (args.out / "results.json").write_text(json.dumps(json_safe(report), indent=1))
    (args.out / "results.md").write_text(table + "\n")
    plot_results(results, args.out / "results.png")
    print(f"evaluate: wrote {args.out / 'results.json'}, results.md, results.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
