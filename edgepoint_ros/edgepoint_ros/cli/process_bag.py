"""Run keypoint extraction and tracking offline over a ROS 2 bag; write Keypoints and Matches to a new bag.

    process_bag INPUT_BAG OUTPUT_BAG [--image-topic T] [--camera-info-topic T]
                [--storage sqlite3|mcap] [--max-frames N] [--model orb ...]
                [--verification fundamental --ransac-threshold-px 1.0 ...]

Every `ExtractorConfig` field (model, weights, runtime, max_keypoints, ...)
and every `TrackerConfig` field (mutual, ratio, verification, reference,
keyframe_*, ...) is an option of the same name with dashes. The input bag may
be sqlite3 or MCAP; images may be sensor_msgs/Image or CompressedImage.

Ctrl-C (SIGINT) or SIGTERM stops it after the frame being processed: the
output bag is closed as usual and holds every frame processed so far (the
last line says how many of how many), exit status 0; a second signal is
ignored. Interrupted before the first frame, it writes no bag and says so.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from ..config import ExtractorConfig
from ..tracking import TrackerConfig


def add_config_arguments(parser: argparse.ArgumentParser, config_class, title: str) -> None:
    """One option per dataclass field (--max-keypoints for max_keypoints), typed
    like the field's default; booleans take true/false."""
    group = parser.add_argument_group(title)
    defaults = config_class()
    for f in fields(config_class):
        default = getattr(defaults, f.name)
        kind = _parse_bool if isinstance(default, bool) else type(default)
        group.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=kind,
                           default=None, metavar=type(default).__name__.upper(),
                           help=f"default: {default}")


def config_from_arguments(args: argparse.Namespace, config_class, **overrides):
    values = {f.name: getattr(args, f.name) for f in fields(config_class)
              if getattr(args, f.name, None) is not None}
    values.update(overrides)
    return config_class.from_mapping(values)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="process_bag", description=__doc__.split("\n\n")[0])
    parser.add_argument("input", type=Path, help="input bag (directory or .mcap/.db3 bag)")
    parser.add_argument("output", type=Path, help="output bag directory (must not exist)")
    parser.add_argument("--image-topic", default=None,
                        help="image topic (default: the bag's only image topic)")
    parser.add_argument("--camera-info-topic", default=None,
                        help="CameraInfo topic: adds normalised coordinates to Keypoints")
    parser.add_argument("--calibration-max-age", type=float, default=1.0,
                        help="seconds a CameraInfo stays valid after its stamp (default 1)")
    parser.add_argument("--keypoints-topic", default="/keypoints")
    parser.add_argument("--matches-topic", default="/matches")
    parser.add_argument("--storage", default="sqlite3", choices=("sqlite3", "mcap"),
                        help="storage of the output bag")
    parser.add_argument("--max-frames", type=int, default=0, help="stop after N images (0 = all)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_arguments(parser, ExtractorConfig, "extractor settings (ExtractorConfig)")
    add_config_arguments(parser, TrackerConfig, "tracker settings (TrackerConfig)")
    args = parser.parse_args(argv)

    from ..bags import process_bag
    from ..shutdown import ShutdownSignals
    signals = ShutdownSignals()  # a flag, read between frames: the bag is never cut mid-write

    def stop() -> str | None:
        if signals.received and not stopping:
            stopping.append(signals.received)
            print(f"\nprocess_bag: {signals.received}: stopping after the current frame; "
                  f"closing {args.output}", file=sys.stderr, flush=True)
        return signals.received

    stopping: list[str] = []
    try:
        extractor = config_from_arguments(args, ExtractorConfig)
        tracker = config_from_arguments(args, TrackerConfig)
        report = process_bag(args.input, args.output, extractor=extractor, tracker=tracker,
                             image_topic=args.image_topic,
                             camera_info_topic=args.camera_info_topic,
                             keypoints_topic=args.keypoints_topic,
                             matches_topic=args.matches_topic, storage=args.storage,
                             max_frames=args.max_frames,
                             calibration_max_age_s=args.calibration_max_age,
                             progress=not args.no_progress, stop=stop)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"process_bag: {exc}", file=sys.stderr)
        return 1
    finally:
        signals.restore()
    print(f"process_bag: {report.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
