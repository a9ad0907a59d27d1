"""Frame-to-frame metrics of the seed report (num_kp, match_prec, outlier_prec, time) over a sequence.

    evaluate_sequence SOURCE [--methods edgepoint,xfeat,orb,sift] [--matchers ratio,mnn]
                      [--width 640 --height 480] [--max-frames N] [--stride S]
                      [--f-rej-th 5] [--max-keypoints 1024] [--set METHOD.FIELD=VALUE ...]
                      [--image-topic T] [--out DIR]

SOURCE is a directory of images, a video file or a ROS 2 bag. Every method
runs on every frame; each frame is matched with the previous one by the
report's ratio test (0.7) and by mutual nearest neighbour, and verified by
F-RANSAC. Prints the summary table and writes records.csv, summary.csv,
summary.json and plots to --out (default artifacts/sequence_eval/<name>).
A method whose model cannot be built (e.g. missing weights) is skipped with
the reason printed and recorded, unless --strict.
`--set` passes ExtractorConfig fields to one method, e.g.
`--set edgepoint.weights=path/EdgePoint.pt --set edgepoint.runtime=torch`.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields
from pathlib import Path

from ..config import MODELS, ExtractorConfig
from ..evaluation.sequence import MATCHERS, evaluate_sequence, format_summary, iter_sequence, \
    sequence_kind, write_outputs


def parse_settings(items: list[str], methods: list[str]) -> dict[str, dict]:
    """['edgepoint.weights=x.pt', ...] -> {'edgepoint': {'weights': 'x.pt'}}, typed
    like the ExtractorConfig field."""
    types = {f.name: type(getattr(ExtractorConfig(), f.name)) for f in fields(ExtractorConfig)}
    settings: dict[str, dict] = {m: {} for m in methods}
    for item in items:
        key, sep, value = item.partition("=")
        method, dot, name = key.partition(".")
        if not sep or not dot:
            raise ValueError(f"--set takes METHOD.FIELD=VALUE; got {item!r}")
        if method not in settings:
            raise ValueError(f"--set {item!r}: {method!r} is not one of the evaluated methods "
                             f"({', '.join(methods)})")
        if name not in types or name == "model":
            raise ValueError(f"--set {item!r}: {name!r} is not an extractor setting")
        kind = types[name]
        if kind is bool:
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"--set {item!r}: expected true or false")
            settings[method][name] = value.lower() in ("true", "1")
        else:
            try:
                settings[method][name] = kind(value)
            except ValueError:
                raise ValueError(f"--set {item!r}: {name} must be a {kind.__name__}") from None
    return settings


def build_models(methods: list[str], max_keypoints: int, settings: dict[str, dict],
                 strict: bool):
    from ..models import create_model

    models, skipped = {}, {}
    for method in methods:
        values = {"model": method, "max_keypoints": max_keypoints, **settings.get(method, {})}
        try:
            models[method] = create_model(ExtractorConfig.from_mapping(values))
        except (FileNotFoundError, ValueError, RuntimeError, ImportError) as exc:
            if strict:
                raise ValueError(f"{method}: {exc}") from exc
            skipped[method] = str(exc)
            print(f"evaluate_sequence: skipping {method}: {exc}", file=sys.stderr)
    return models, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="evaluate_sequence",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="image directory, video file or ROS 2 bag")
    parser.add_argument("--methods", default=",".join(MODELS),
                        help=f"comma-separated models (default {','.join(MODELS)})")
    parser.add_argument("--matchers", default=",".join(MATCHERS),
                        help="ratio (the report's 0.7 ratio test) and/or mnn (mutual NN)")
    parser.add_argument("--width", type=int, default=0, help="resize frames (0 = native)")
    parser.add_argument("--height", type=int, default=0)
    parser.add_argument("--max-frames", type=int, default=0, help="0 = all")
    parser.add_argument("--stride", type=int, default=1, help="use every S-th frame")
    parser.add_argument("--start", type=int, default=0, help="first frame index")
    parser.add_argument("--image-topic", default=None, help="image topic of a bag source")
    parser.add_argument("--f-rej-th", type=float, default=5.0,
                        help="F-RANSAC point-to-epipolar-line threshold in pixels (default 5)")
    parser.add_argument("--max-keypoints", type=int, default=1024,
                        help="keypoint budget of every method (default 1024)")
    parser.add_argument("--set", action="append", default=[], metavar="METHOD.FIELD=VALUE",
                        help="an ExtractorConfig field for one method (repeatable)")
    parser.add_argument("--name", default=None, help="sequence name (default: source name)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default artifacts/sequence_eval/<name>)")
    parser.add_argument("--strict", action="store_true",
                        help="fail instead of skipping a method that cannot be built")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    matchers = [m.strip() for m in args.matchers.split(",") if m.strip()]
    name = args.name or args.source.stem
    root = Path(os.environ.get("EDGEPOINT_ROS_ROOT", "."))
    out = args.out or root / "artifacts" / "sequence_eval" / name
    try:
        bad = [m for m in methods if m not in MODELS]
        if bad or not methods:
            raise ValueError(f"methods must be among {', '.join(MODELS)}; got {args.methods!r}")
        sequence_kind(args.source)
        settings = parse_settings(args.set, methods)
        models, skipped = build_models(methods, args.max_keypoints, settings, args.strict)
        if not models:
            raise ValueError("no method could be built: " + "; ".join(
                f"{m}: {why}" for m, why in skipped.items()))
        frames = iter_sequence(args.source, width=args.width, height=args.height,
                               max_frames=args.max_frames, stride=args.stride, start=args.start,
                               image_topic=args.image_topic)
        progress = None
        if not args.no_progress:
            from tqdm import tqdm
            bar = tqdm(unit="frame", file=sys.stderr, total=args.max_frames or None)
            progress = lambda _: bar.update(1)  # noqa: E731
        result = evaluate_sequence(frames, models, matchers=matchers, f_rej_th=args.f_rej_th,
                                   name=name, progress=progress)
        if progress is not None:
            bar.close()
        result.skipped = skipped
        result.settings.update({
            "source": str(args.source), "width": args.width, "height": args.height,
            "stride": args.stride, "start": args.start, "max_keypoints": args.max_keypoints,
            "extractor_settings": {m: {"max_keypoints": args.max_keypoints, **settings[m]}
                                   for m in models},
            "runtime_info": {m: model.runtime_info() for m, model in models.items()}})
        paths = write_outputs(result, out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"evaluate_sequence: {exc}", file=sys.stderr)
        return 1
    print(format_summary(result))
    print(f"evaluate_sequence: wrote {', '.join(str(p) for p in paths.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
