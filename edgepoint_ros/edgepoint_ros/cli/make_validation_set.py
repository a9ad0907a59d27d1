"""Write the held-out validation benchmark (Oxford layout) used to choose
settings and checkpoints without touching the Oxford benchmark.

    python -m edgepoint_ros.cli.make_validation_set [--out DIR] [--photos-per-kind N] [--seed S]
    python -m edgepoint_ros.cli.evaluate --data DIR --methods edgepoint,...

Needs the photographs of scripts/get_training_data.sh; see
`edgepoint_ros.evaluation.validation_set` for what the sequences contain.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make_validation_set",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("artifacts/validation-set"))
    parser.add_argument("--photos-per-kind", type=int, default=4,
                        help="held-out photographs per nuisance (zoom, viewpoint, blur, light)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.photos_per_kind < 1:
        print(f"make_validation_set: --photos-per-kind must be >= 1; got {args.photos_per_kind}",
              file=sys.stderr)
        return 2
    from ..evaluation.validation_set import LEVELS, make_validation_set
    try:
        folders = make_validation_set(args.out, args.photos_per_kind, args.seed)
    except FileNotFoundError as exc:
        print(f"make_validation_set: {exc}", file=sys.stderr)
        return 2
    print(f"make_validation_set: wrote {len(folders)} sequences ({LEVELS * len(folders)} pairs) "
          f"under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
