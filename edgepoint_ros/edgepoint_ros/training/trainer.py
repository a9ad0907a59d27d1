"""Training loop for EdgePoint: resumable, seeded, logged; on CPU, or on a CUDA GPU.

Every step draws its pairs from a generator seeded with (seed, step), so a
resumed run sees exactly the batches an uninterrupted run would have seen.
The run directory holds `last.pt` (model, optimiser, scheduler, step: resume
point), `best.pt` (best validation so far), `log.csv` (losses per step,
validation rows) and `config.json`.

Validation uses synthetic homography pairs made from images held out of
training (`data.HELD_OUT`), never the Oxford benchmark.

`device` "cuda" runs the student, the teacher and the losses on the GPU; the
pairs are still drawn on the CPU from the same (seed, step) generators, and
checkpoints hold CPU tensors, so a run can move between CPU and GPU between
two sessions (it stays the same run up to floating-point rounding).
"""
from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from ..detection import detect_keypoints, sample_descriptors
from ..matching import match_descriptors
from ..models.edgepoint_net import EdgePointNet, save_checkpoint, size_config
from ..paths import written_atomically
from . import losses
from .data import (HELD_OUT, IMAGE_ROOTS, PairConfig, find_training_images,
                   load_image_bank, make_pair, split_holdout)


# detector distillation targets: the teacher's top NMS peaks as 0/1 ("peaks"),
# or its score map itself as soft targets that keep the peaks' shape ("dense")
DET_TARGETS = ("peaks", "dense")


@dataclass
class TrainConfig:
    steps: int = 6000
    batch_size: int = 6
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    seed: int = 0
    init_from: str = ""               # weights a new run starts from (fine-tuning); "" = random
    image_roots: tuple = ()           # folders of training photos; () = data.IMAGE_ROOTS
    image_index: str = ""             # train on this image index instead (index_data.py); "" = off
    max_images: int = 0               # with image_index: a seeded subset of this many (0 = all)
    image_seed: int = 0               # with image_index: the subset's seed
    max_decoded: int = 64             # with image_index: decoded images held at a time
    fuse_teacher: bool = False         # detector targets from both views' teacher scores
    teacher: str = "xfeat"            # one of teacher.TEACHERS, or none
    teacher_weights: str = ""         # checkpoint of the edgepoint teacher ("" = shipped medium)
    size: str = "medium"              # student architecture: models.edgepoint_net.SIZES
    det_target: str = "peaks"          # one of DET_TARGETS
    points_per_pair: int = 384         # teacher keypoints + random points for the contrastive loss
    teacher_keypoints: int = 384
    w_contrastive: float = 1.0
    w_desc_distill: float = 1.0       # teacher descriptors: map cosine or similarity KL (losses.py)
    w_det_distill: float = 1.0
    w_repeatability: float = 1.0
    w_peak_reprojection: float = 0.0  # sub-pixel localisation of the student's own peaks
    peak_keypoints: int = 256          # peaks per view for that loss
    checkpoint_every: int = 100
    validate_every: int = 500
    validation_pairs: int = 32
    held_out: tuple = HELD_OUT        # pictures (data.image_key) kept out of training
    num_threads: int = 2
    device: str = "cpu"               # cpu | cuda
    pair: PairConfig = field(default_factory=PairConfig)


def training_device(name: str) -> torch.device:
    """torch.device for TrainConfig.device, with an error naming what is missing."""
    if name not in ("cpu", "cuda"):
        raise ValueError(f"training device must be cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        from ..runtimes.torch_backend import no_cuda_reason
        raise RuntimeError(f"training device cuda: {no_cuda_reason(torch)}")
    return torch.device(name)


def _batch(bank, rng, cfg: TrainConfig):
    if cfg.pair.pairs_3d > 0:            # no draw at 0: older runs replay their pairs
        return _mixed_batch(bank, rng, cfg)
    views_a, views_b, homs, masks_a, masks_b = [], [], [], [], []
    for _ in range(cfg.batch_size):
        a, b, h, ma, mb = make_pair(bank, rng, cfg.pair)
        views_a.append(a)
        views_b.append(b)
        homs.append(h)
        masks_a.append(ma)
        masks_b.append(mb)
    to_tensor = lambda xs: torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 255.0  # noqa: E731
    return (to_tensor(views_a), to_tensor(views_b), torch.from_numpy(np.stack(homs)),
            torch.from_numpy(np.stack(masks_a)), torch.from_numpy(np.stack(masks_b)))


def _mixed_batch(bank, rng, cfg: TrainConfig):
    """A batch of homography pairs and 3D plane scenes (a fraction
    cfg.pair.pairs_3d of them, scene_pairs.py); its correspondences are a
    losses.DenseWarp in the place of the homographies, its masks all ones for
    the scenes (every pixel shows a surface; the warp says where it is seen)."""
    from .scene_pairs import SceneConfig, homography_flow, make_scene_pair
    scene_cfg = SceneConfig(size=cfg.pair.size, heavy_blur=cfg.pair.heavy_blur,
                            grayscale=cfg.pair.grayscale)
    views_a, views_b, masks_a, masks_b, flows = [], [], [], [], []
    for _ in range(cfg.batch_size):
        if rng.random() < cfg.pair.pairs_3d:
            scene = make_scene_pair(bank, rng, scene_cfg)
            a, b = scene.view_a, scene.view_b
            ma = mb = np.ones(a.shape[:2], np.uint8)
            flows.append((scene.flow_ab, scene.valid_ab, scene.flow_ba, scene.valid_ba))
        else:
            a, b, h, ma, mb = make_pair(bank, rng, cfg.pair)
            flows.append(homography_flow(h, ma, mb))
        views_a.append(a)
        views_b.append(b)
        masks_a.append(ma)
        masks_b.append(mb)
    to_tensor = lambda xs: torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 255.0  # noqa: E731
    warp = losses.DenseWarp(*(torch.from_numpy(np.stack(parts)) for parts in zip(*flows)))
    return (to_tensor(views_a), to_tensor(views_b), warp,
            torch.from_numpy(np.stack(masks_a)), torch.from_numpy(np.stack(masks_b)))


def _lr_factor(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def validate(net: EdgePointNet, pairs, max_keypoints: int = 1000) -> dict:
    """Homography accuracy on synthetic pairs: fraction with mean corner error
    <= 3 px (HA@3), mean matching accuracy at 3 px (MMA@3), keypoints."""
    net.eval()
    correct, mma, counts = 0, [], []
    for view_a, view_b, h_ab, _, _ in pairs:
        feats = []
        for view in (view_a, view_b):
            x = torch.from_numpy(view).permute(2, 0, 1)[None].float() / 255.0
            scores, desc = net.forward_export(x.to(next(net.parameters()).device))
            scores, desc = scores.cpu(), desc.cpu()
            kp, _ = detect_keypoints(scores[0, 0].numpy(), nms_radius=2, max_keypoints=max_keypoints,
                                     border=4, subpixel=True)
            feats.append((kp, sample_descriptors(desc[0].numpy(), kp, 8)))
        counts.append(len(feats[0][0]))
        ia, ib, _ = match_descriptors(feats[0][1], feats[1][1], mutual=True)
        pa, pb = feats[0][0][ia], feats[1][0][ib]
        if len(pa) >= 4:
            true_b = cv2.perspectiveTransform(pa[None].astype(np.float64), h_ab.astype(np.float64))[0]
            mma.append(float((np.linalg.norm(true_b - pb, axis=1) <= 3).mean()))
            h_est, _ = cv2.findHomography(pa, pb, cv2.RANSAC)
            if h_est is not None:
                side = view_a.shape[1]
                corners = np.array([[[0, 0], [side - 1, 0], [side - 1, side - 1], [0, side - 1]]], np.float64)
                err = np.linalg.norm(cv2.perspectiveTransform(corners, h_est)
                                     - cv2.perspectiveTransform(corners, h_ab.astype(np.float64)), axis=2).mean()
                correct += err <= 3
        else:
            mma.append(0.0)
    net.train()
    # plain floats: checkpoints must load with torch.load(weights_only=True)
    return {"val_ha3": float(correct) / len(pairs), "val_mma3": float(np.mean(mma)),
            "val_keypoints": float(np.mean(counts))}


def _to_cpu(state):
    """A state_dict (nested dicts/lists of tensors) with every tensor on the CPU."""
    if isinstance(state, torch.Tensor):
        return state.cpu()
    if isinstance(state, dict):
        return {k: _to_cpu(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_to_cpu(v) for v in state)
    return state


def _drop_log_rows_after(log_path: Path, step: int) -> None:
    """A run stopped between two checkpoints logged steps it will redo on
    resume: keep log.csv to the steps of the checkpoint it resumes from."""
    if not log_path.exists():
        return
    with open(log_path, newline="") as f:
        rows = list(csv.reader(f))
    kept = [row for row in rows[1:] if row and int(row[0]) <= step]
    if len(kept) != len(rows) - 1:
        with open(log_path, "w", newline="") as f:
            csv.writer(f).writerows(rows[:1] + kept)


def _record_data(path: Path, train_paths: list[Path], holdout: list[Path]) -> None:
    """The pictures a run trains on and holds out, written when it begins; a
    resumed run must find the same ones (else it is not the run it continues)."""
    data = {"training_pictures": [str(p) for p in train_paths],
            "held_out_pictures": [str(p) for p in holdout]}
    if path.exists():
        saved = json.loads(path.read_text())
        for key, now in data.items():
            added, gone = set(now) - set(saved[key]), set(saved[key]) - set(now)
            if added or gone:
                raise ValueError(
                    f"{path.parent}: its {key.replace('_', ' ')} changed since the run began "
                    f"({len(added)} added, e.g. {sorted(added)[:2]}; {len(gone)} gone, e.g. "
                    f"{sorted(gone)[:2]}); restore them or use a new --run-dir")
        return
    path.write_text(json.dumps(data, indent=1))


def _index_bank(run_dir: Path, cfg: TrainConfig, holdout: list[Path]):
    """The streaming bank of an image-index run; its images (ids, sources,
    licences) and the held-out pictures are recorded in data.json when the run
    begins, and a resumed run reads back exactly those (index_data.py)."""
    from .index_data import StreamingImageBank, index_training_data, run_image_path
    path = run_dir / "data.json"
    saved = json.loads(path.read_text()) if path.exists() else None
    if saved is not None and saved["held_out_pictures"] != [str(p) for p in holdout]:
        raise ValueError(f"{run_dir}: its held-out pictures changed since the run began; "
                         "use a new --run-dir")
    entries, info = index_training_data(run_dir, Path(cfg.image_index), cfg.max_images,
                                        cfg.image_seed, cfg.held_out, saved)
    if saved is None:
        data = {"image_index": info,
                "training_pictures": [str(run_image_path(run_dir, e["id"])) for e in entries],
                "held_out_pictures": [str(p) for p in holdout],
                "training_images": entries}
        with written_atomically(path) as tmp:
            Path(tmp).write_text(json.dumps(data, indent=1))
    return StreamingImageBank([run_image_path(run_dir, e["id"]) for e in entries],
                              max_decoded=cfg.max_decoded)


def train(run_dir: str | Path, cfg: TrainConfig, progress: bool = True,
          stop_at: int | None = None) -> Path:
    """Train (or resume) the run in `run_dir` to cfg.steps; with `stop_at`,
    stop after that step with a resumable checkpoint (a run split across
    sessions). Returns the best checkpoint (last.pt when stopped early)."""
    from tqdm import tqdm

    from .teacher import make_teacher
    # a wrong teacher or target is named before the run directory is touched
    if cfg.det_target not in DET_TARGETS:
        raise ValueError(f"det_target must be 'peaks' or 'dense', got {cfg.det_target!r}")
    device = training_device(cfg.device)
    student_config = size_config(cfg.size)
    teacher = make_teacher(cfg.teacher, cfg.teacher_weights)
    if teacher is not None:
        teacher = teacher.to(device)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    config_path = run_dir / "config.json"
    if config_path.exists():
        saved = json.loads(config_path.read_text())
        if saved.get("seed") != cfg.seed or saved.get("batch_size") != cfg.batch_size:
            raise ValueError(f"{run_dir} was started with a different seed/batch size; "
                             "use a new --run-dir")
        for key in ("image_index", "max_images", "image_seed"):
            if saved.get(key, TrainConfig.__dataclass_fields__[key].default) != getattr(cfg, key):
                raise ValueError(f"{run_dir} was started with {key} {saved.get(key)!r}, not "
                                 f"{getattr(cfg, key)!r}; use a new --run-dir")
    config_path.write_text(json.dumps(asdict(cfg), indent=2))

    paths = find_training_images(cfg.image_roots or IMAGE_ROOTS)
    train_paths, holdout = split_holdout(paths, cfg.held_out)
    if cfg.image_index:
        bank = _index_bank(run_dir, cfg, holdout)
    else:
        _record_data(run_dir / "data.json", train_paths, holdout)
        bank = load_image_bank(train_paths)
    val_bank = load_image_bank(holdout)
    val_pairs = [make_pair(val_bank, np.random.default_rng([cfg.seed, 10**9, i]),
                           PairConfig(size=320, source_size=400)) for i in range(cfg.validation_pairs)]
    print(f"training images: {len(bank)} (held out for validation: {len(val_bank)})", flush=True)

    net = EdgePointNet(student_config).train().to(device)
    # (the optimiser's state follows its parameters' device when it is loaded)
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, cfg))
    start, best = 0, -1.0
    last = run_dir / "last.pt"
    if last.exists():
        state = torch.load(last, map_location="cpu", weights_only=True)
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, best = int(state["step"]), float(state["best"])
        print(f"resuming {run_dir} at step {start} (best validation {best:.3f})", flush=True)
    elif cfg.init_from:
        from ..models.edgepoint_net import load_weights, transfer_weights
        source = load_weights(cfg.init_from)
        if source.config == net.config:
            net.load_state_dict(source.state_dict())  # copies onto device
            print(f"starting from the weights of {cfg.init_from}", flush=True)
        else:      # another size: what fits (models/edgepoint_net.py transfer_weights)
            copied = transfer_weights(source, net)
            print(f"starting from the weights of {cfg.init_from} where they fit: "
                  f"{len(copied)} of {len(net.state_dict())} tensors", flush=True)
    log_path = run_dir / "log.csv"
    _drop_log_rows_after(log_path, start)
    columns = ["step", "loss", "contrastive", "match_acc", "desc_distill", "det_distill",
               "repeatability", "lr", "sec_per_step", "val_ha3", "val_mma3", "val_keypoints",
               "peak_reprojection"]
    new_log = not log_path.exists()
    if not new_log:             # a log begun before a column existed keeps its columns
        with open(log_path, newline="") as f:
            columns = next(csv.reader(f), columns)
    log_file = open(log_path, "a", newline="")
    writer = csv.DictWriter(log_file, fieldnames=columns, extrasaction="ignore")
    if new_log:
        writer.writeheader()

    def save_state(step):
        with written_atomically(last) as tmp:
            torch.save({"model": _to_cpu(net.state_dict()),
                        "optimizer": _to_cpu(optimizer.state_dict()),
                        "scheduler": scheduler.state_dict(), "step": step, "best": best,
                        "config": asdict(net.config)}, tmp)

    end = cfg.steps if stop_at is None else max(start, min(cfg.steps, stop_at))
    bar = tqdm(range(start, end), initial=start, total=cfg.steps, disable=not progress,
               desc="train edgepoint", dynamic_ncols=True, mininterval=5)
    size = cfg.pair.size
    for step in bar:
        t0 = time.perf_counter()
        rng = np.random.default_rng([cfg.seed, step])
        view_a, view_b, h_ab, mask_a, mask_b = (
            t.to(device, non_blocking=True) for t in _batch(bank, rng, cfg))
        images = torch.cat([view_a, view_b])
        logits, desc = net(images)
        logits_a, logits_b = logits.chunk(2)
        desc_a, desc_b = desc.chunk(2)
        terms = {}
        n_random = cfg.points_per_pair
        points = (torch.rand(cfg.batch_size, n_random, 2, generator=torch.Generator().manual_seed(step))
                  * (size - 1)).to(device)
        if teacher is not None:
            taught = teacher(images)
            t_scores = taught.scores
            if cfg.fuse_teacher:
                t_scores = torch.cat(losses.fuse_teacher_scores(
                    *t_scores.chunk(2), h_ab, mask_a, mask_b))
            targets = losses.teacher_keypoints(t_scores, cfg.teacher_keypoints)
            terms["det_distill"] = losses.detector_distill(
                logits, targets if cfg.det_target == "peaks" else t_scores)
            if taught.descriptor_map is not None:
                terms["desc_distill"] = losses.descriptor_distill(desc, taught.descriptor_map)
            # contrastive points: up to half of them teacher keypoints of A (a random
            # subset: nonzero() lists them in raster order, and its head would be the
            # top of the image), the rest random points
            ta = targets[:cfg.batch_size, 0]
            kp_points = []
            pick = torch.Generator().manual_seed(10**6 + step)
            for i in range(cfg.batch_size):
                ys, xs = torch.nonzero(ta[i], as_tuple=True)
                order = torch.randperm(len(xs), generator=pick)[: cfg.points_per_pair // 2].to(device)
                kp = torch.stack([xs[order], ys[order]], -1).float()
                kp_points.append(torch.cat([kp, points[i, : n_random - len(kp)]]))
            points = torch.stack(kp_points)
            if taught.describe is not None and cfg.w_desc_distill > 0:
                t_desc_a, t_desc_b = taught.describe(
                    torch.cat([points, losses.carry(points, h_ab)[0]])).chunk(2)
                terms["desc_distill"] = losses.similarity_distill(
                    desc_a, desc_b, t_desc_a, t_desc_b, points, h_ab, mask_a, mask_b, (size, size))
        terms["contrastive"], match_acc = losses.descriptor_contrastive(
            desc_a, desc_b, points, h_ab, mask_a, mask_b, (size, size))
        terms["repeatability"] = losses.repeatability(logits_a, logits_b, h_ab, mask_a, mask_b)
        if cfg.w_peak_reprojection > 0:
            terms["peak_reprojection"] = losses.peak_reprojection(
                logits_a, logits_b, h_ab, mask_a, mask_b, k=cfg.peak_keypoints)
        weights = {"contrastive": cfg.w_contrastive, "desc_distill": cfg.w_desc_distill,
                   "det_distill": cfg.w_det_distill, "repeatability": cfg.w_repeatability,
                   "peak_reprojection": cfg.w_peak_reprojection}
        loss = sum(weights[k] * v for k, v in terms.items())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        optimizer.step()
        scheduler.step()
        dt = time.perf_counter() - t0
        row = {"step": step + 1, "loss": loss.item(), "match_acc": float(match_acc),
               "lr": scheduler.get_last_lr()[0], "sec_per_step": dt,
               **{k: v.item() for k, v in terms.items()}}
        bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['match_acc']:.2f}", refresh=False)
        done = step + 1
        if done % cfg.validate_every == 0 or done == cfg.steps:
            row.update(validate(net, val_pairs))
            if row["val_ha3"] + row["val_mma3"] > best:
                best = row["val_ha3"] + row["val_mma3"]
                save_checkpoint(net, run_dir / "best.pt", step=done, **{k: row[k] for k in ("val_ha3", "val_mma3")})
            print(f"\nstep {done}: val HA@3 {row['val_ha3']:.3f} MMA@3 {row['val_mma3']:.3f} "
                  f"keypoints {row['val_keypoints']:.0f}", flush=True)
        writer.writerow(row)
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            log_file.flush()
            save_state(done)
    log_file.close()
    if end < cfg.steps:
        save_state(end)
        print(f"stopped at step {end} of {cfg.steps}; run the same command again to resume",
              flush=True)
        return last
    save_checkpoint(net, run_dir / "final.pt", step=cfg.steps)
    return run_dir / "best.pt"
