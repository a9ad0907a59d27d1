"""Offline feature extraction: one `.npz` of keypoints per image (for mapping/SfM).

    extract --model NAME [--weights PATH] [--max-keypoints N] [--device D]
            [--runtime R] [--binary] [--set FIELD=VALUE ...] --out DIR IMAGE...

Each IMAGE becomes DIR/<image name without extension>.npz (`Features.save_npz`):
`keypoints` (N, 2) float32 pixel x, y (OpenCV convention, original image
size), `scores` (N,) float32, `descriptors` (N, D) float32 or, for binary
descriptors, (N, D/8) uint8 packed bits (MSB first), plus `image_size`,
`descriptor_type`, `descriptor_dim`. Read back with `Features.load_npz`.

Images that cannot be read are reported and skipped; the exit status is 1
when any image failed, 2 for bad arguments or a model that cannot load.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..config import MODELS, ExtractorConfig
from .extractor_settings import parse_assignment


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="extract", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, choices=MODELS)
    parser.add_argument("--weights", default="", help="weights file (default: the model's own)")
    parser.add_argument("--max-keypoints", type=int, default=None,
                        help="keep at most N keypoints per image (0 = no limit)")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda | tensorrt | gpu | npu")
    parser.add_argument("--runtime", default=None, help="auto | onnxruntime | openvino | torch")
    parser.add_argument("--binary", action="store_true",
                        help="bit-packed sign descriptors (Hamming matching)")
    parser.add_argument("--set", dest="settings", action="append", default=[],
                        metavar="FIELD=VALUE", help="any other extractor setting; repeatable")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    return parser


def make_config(args) -> ExtractorConfig:
    values = {"model": args.model, "weights": args.weights}
    for text in args.settings:
        name, value = parse_assignment(text)
        values[name] = value
    if args.max_keypoints is not None:
        values["max_keypoints"] = args.max_keypoints
    if args.device is not None:
        values["device"] = args.device
    if args.runtime is not None:
        values["runtime"] = args.runtime
    if args.binary:
        values["binary_descriptors"] = True
    return ExtractorConfig.from_mapping(values)


def output_paths(images: list[Path], out_dir: Path) -> list[Path]:
    """DIR/<stem>.npz per image; two images with the same stem are an error."""
    seen: dict[str, Path] = {}
    for image in images:
        if image.stem in seen:
            raise ValueError(f"{seen[image.stem]} and {image} would both write "
                             f"{image.stem}.npz; extract them into different --out folders")
        seen[image.stem] = image
    return [out_dir / f"{image.stem}.npz" for image in images]


def read_image(path: Path):
    import cv2
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: cannot decode (not an image OpenCV can read)")
    return image


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = make_config(args)
        outputs = output_paths(args.images, args.out)
        from ..models import create_model
        model = create_model(config)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"extract: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    failed, counts, seconds = [], [], []
    bar = tqdm(list(zip(args.images, outputs)), desc=f"extract {config.model}", unit="img",
               disable=args.quiet, file=sys.stderr)
    for image_path, out_path in bar:
        try:
            image = read_image(image_path)
            start = time.perf_counter()
            features = model.extract(image)
            seconds.append(time.perf_counter() - start)
        except ValueError as exc:  # unreadable file, or an image the model refuses
            failed.append(image_path)
            tqdm.write(f"extract: skipped {exc}", file=sys.stderr)
            continue
        features.save_npz(out_path)
        counts.append(len(features))
        bar.set_postfix(keypoints=len(features))
    if counts:
        print(f"extract: wrote {len(counts)} file(s) to {args.out}: "
              f"{sum(counts) / len(counts):.0f} keypoints/image, "
              f"{1e3 * sum(seconds) / len(seconds):.1f} ms/image "
              f"({model.runtime_info().get('runtime')}/{model.runtime_info().get('device')})")
    if failed:
        print(f"extract: {len(failed)} image(s) failed: {', '.join(map(str, failed))}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
