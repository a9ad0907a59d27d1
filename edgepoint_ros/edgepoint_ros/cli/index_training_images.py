"""Index the training images of the installed Debian packages (see
`edgepoint_ros.training.image_index`): filter, de-duplicate by perceptual
hash, exclude Oxford and every validation picture by hash, cache downscaled
copies and write a manifest. Idempotent: a second run decodes only new or
changed files and adds what passes.

    python -m edgepoint_ros.cli.index_training_images [--index DIR] [--packages P ...]
        [--oxford DIR] [--stop-at HH:MM] [--limit-per-source N]
    python -m edgepoint_ros.cli.index_training_images --markdown    # the counts, for docs

`scripts/get_training_data.sh` installs the packages and runs this (niced).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path


def _default_oxford() -> Path:
    root = Path(os.environ.get("EDGEPOINT_ROS_ROOT", Path.cwd()))
    return root.parent / "shared" / "data" / "oxford-affine"


def _deadline(hhmm: str) -> float:
    """time.time() of the next HH:MM UTC."""
    hour, minute = (int(x) for x in hhmm.split(":"))
    now = dt.datetime.now(dt.timezone.utc)
    at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if at <= now:
        at += dt.timedelta(days=1)
    return at.timestamp()


def main(argv: list[str] | None = None) -> int:
    from ..training import image_index as ix

    parser = argparse.ArgumentParser(prog="index_training_images",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=ix.DEFAULT_INDEX_DIR,
                        help="index folder (default $EDGEPOINT_TRAINING_INDEX or %(default)s)")
    parser.add_argument("--packages", nargs="+", default=list(ix.SOURCE_PACKAGES),
                        help="Debian packages to index, in order (default: all known)")
    parser.add_argument("--oxford", type=Path, default=_default_oxford(),
                        help="the Oxford benchmark folder, excluded by hash (default %(default)s)")
    parser.add_argument("--stop-at", metavar="HH:MM",
                        help="stop cleanly (resumable) at this UTC time")
    parser.add_argument("--limit-per-source", type=int, default=0,
                        help="at most this many new candidates per source (trials)")
    parser.add_argument("--min-side", type=int, default=None,
                        help="shorter side after the downscale, at least (default: "
                             "image_index.INDEX_MIN_SIDE, 256); another value re-examines "
                             "the index")
    parser.add_argument("--markdown", action="store_true",
                        help="print the last complete run's counts (summary.json) as a "
                             "Markdown table and exit")
    args = parser.parse_args(argv)
    if args.markdown:
        import json
        summary_path = args.index / "summary.json"
        if not summary_path.exists():
            print(f"index_training_images: no {summary_path}; index first", file=sys.stderr)
            return 2
        print(ix.summary_markdown(json.loads(summary_path.read_text())))
        return 0

    from ..evaluation.validation_set import VIDEO_DIR, VIDEO_FRAMES
    missing = [p for p in args.packages if not ix.package_files(p)]
    if missing:
        print(f"index_training_images: not installed (skipped): {' '.join(missing)}; "
              "run scripts/get_training_data.sh", file=sys.stderr)
    if not args.oxford.is_dir():
        print(f"index_training_images: WARNING: no Oxford folder at {args.oxford}; its images "
              "are not excluded by hash (opencv-doc's copies of them are)", file=sys.stderr)
    videos = {VIDEO_DIR / name: indices for name, indices in VIDEO_FRAMES.items()}
    for name in ("tree.avi",):                       # the video quality is reported on
        videos.setdefault(VIDEO_DIR / name, ())
    started = time.time()
    exclusions, counts = ix.default_exclusions(args.oxford, videos)
    print(f"exclusion references: {len(exclusions)} ("
          + ", ".join(f"{k} {v}" for k, v in counts.items()) + f"; {time.time() - started:.0f} s)",
          flush=True)
    sources = [ix.package_source(p) for p in args.packages if p not in missing]
    report = ix.build_index(args.index, sources, exclusions,
                            limit_per_source=args.limit_per_source,
                            **({"min_side": args.min_side} if args.min_side else {}),
                            log=lambda m: print(m, flush=True),
                            deadline=_deadline(args.stop_at) if args.stop_at else None,
                            notes={"exclusions": counts, "oxford_dir": str(args.oxford)})
    print(report.table())
    total = len(ix.load_manifest(args.index))
    removed = sum(report.removed.values())
    print(f"index_training_images: {total} images in {args.index} ({sum(report.added.values())} "
          f"added, {removed} removed by exclusion, {report.decoded_now} candidates examined now, "
          f"{report.seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
