"""Training pieces on CPU in seconds: pair geometry, the contrastive loss, and
that a run stopped and resumed is the run that never stopped.

The real training (hours) never runs here; these use a few opencv-doc photos
(installed by scripts/setup.sh) at 64x64.
"""
from __future__ import annotations

import csv
from dataclasses import replace
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import locations
from edgepoint_ros.cli import train as train_cli
from edgepoint_ros.training import losses
from edgepoint_ros.training.data import (PairConfig, find_training_images, image_key,
                                         load_image_bank, make_pair, split_holdout)
from edgepoint_ros.training.trainer import TrainConfig, train

OPENCV_DATA = "/usr/share/doc/opencv-doc/examples/data"


@pytest.fixture(scope="module")
def bank():
    paths = find_training_images((OPENCV_DATA,))
    assert paths, "opencv-doc images missing: run scripts/setup.sh"
    assert not any("graf" in p.name or "leuven" in p.name for p in paths), \
        "the Oxford images opencv-doc ships must stay out of training"
    return load_image_bank(paths[:12])


def _zncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (np.sqrt((a * a).sum() * (b * b).sum()) + 1e-6))


def test_pair_homography_maps_view_a_onto_view_b(bank):
    rng = np.random.default_rng(5)
    scores = []
    for _ in range(6):
        view_a, view_b, h_ab, mask_a, mask_b = make_pair(bank, rng, PairConfig())
        size = view_a.shape[1], view_a.shape[0]
        # Warp B back into A's frame: where both views show the source, they
        # must show the same content (up to the photometric changes).
        b_in_a = cv2.warpPerspective(view_b, np.linalg.inv(h_ab), size)
        valid = mask_a.astype(bool) & cv2.warpPerspective(
            mask_b, np.linalg.inv(h_ab), size, flags=cv2.INTER_NEAREST).astype(bool)
        valid = cv2.erode(valid.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        if valid.sum() < 2000:
            continue
        grey_a = cv2.cvtColor(view_a, cv2.COLOR_RGB2GRAY).astype(np.float32)
        grey_b = cv2.cvtColor(b_in_a, cv2.COLOR_RGB2GRAY).astype(np.float32)
        scores.append(_zncc(grey_a[valid], grey_b[valid]))
        # and a wrong homography does not
        shifted = cv2.warpPerspective(view_b, np.linalg.inv(h_ab) @ np.array(
            [[1, 0, 12], [0, 1, 9], [0, 0, 1]], np.float64), size)
        grey_s = cv2.cvtColor(shifted, cv2.COLOR_RGB2GRAY).astype(np.float32)
        assert _zncc(grey_a[valid], grey_s[valid]) < scores[-1]
    assert len(scores) >= 3 and np.median(scores) > 0.5, scores


def test_contrastive_loss_rewards_matching_descriptors():
    torch.manual_seed(0)
    desc = torch.randn(1, 16, 8, 8)
    points = torch.rand(1, 64, 2) * 63
    identity = torch.eye(3)[None]
    mask = torch.ones(1, 64, 64)
    same_loss, same_acc = losses.descriptor_contrastive(desc, desc.clone(), points, identity,
                                                        mask, mask, (64, 64))
    other_loss, other_acc = losses.descriptor_contrastive(desc, torch.randn(1, 16, 8, 8), points,
                                                          identity, mask, mask, (64, 64))
    assert same_loss < other_loss and same_acc > 0.9 > other_acc


def test_similarity_distillation_follows_the_teacher_where_it_matches_right():
    torch.manual_seed(0)
    desc = torch.randn(1, 16, 8, 8)
    grid = torch.arange(4.0, 64.0, 8.0)                    # 8 x 8 points, 8 px apart
    points = torch.stack(torch.meshgrid(grid, grid, indexing="xy"), -1).view(1, 64, 2)
    identity, mask = torch.eye(3)[None], torch.ones(1, 64, 64)
    student = F.normalize(losses.sample_map(desc, points, (64, 64)), dim=-1)
    widen = torch.linalg.qr(torch.randn(32, 32))[0][:16]   # 16 -> 32 dimensions, cosines kept

    def loss(teacher_a, teacher_b, student_map):
        return losses.similarity_distill(student_map, desc, teacher_a, teacher_b, points,
                                         identity, mask, mask, (64, 64))

    # a teacher of another width that matches exactly as the student does
    assert abs(loss(student @ widen, student @ widen, desc).item()) < 1e-4
    # a teacher that matches right with other similarities pulls the student
    noisy = F.normalize(student @ widen + 0.3 * torch.randn(1, 64, 32), dim=-1)
    student_map = desc.clone().requires_grad_(True)
    pulled = loss(noisy, F.normalize(student @ widen + 0.3 * torch.randn(1, 64, 32), dim=-1),
                  student_map)
    pulled.backward()
    assert pulled.item() > 1e-3 and student_map.grad.abs().sum() > 0
    # a teacher whose best match is always a wrong point teaches nothing
    wrong = loss(student @ widen, (student @ widen).roll(1, dims=1), desc)
    assert wrong.item() == 0.0


def _tiny(tmp_path: Path, steps: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=1, teacher="none", warmup_steps=1,
                       checkpoint_every=1, validate_every=2, validation_pairs=1,
                       num_threads=1, points_per_pair=32, image_roots=(OPENCV_DATA,),
                       w_peak_reprojection=1.0, peak_keypoints=16,
                       pair=PairConfig(size=64, source_size=96))


def _log(run_dir: Path) -> list[dict]:
    with open(run_dir / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_stopped_and_resumed_run_is_the_uninterrupted_run(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    train(whole, _tiny(tmp_path, 4), progress=False)
    assert train(split, _tiny(tmp_path, 4), progress=False, stop_at=2) == split / "last.pt"
    assert not (split / "final.pt").exists()
    # a stop between checkpoints leaves log rows the resumed run redoes: not duplicated
    with open(split / "log.csv", "a", newline="") as f:
        f.write("3,9.9,,,,,,,,,,\n")
    train(split, _tiny(tmp_path, 4), progress=False)

    a = torch.load(whole / "final.pt", weights_only=True)["model"]
    b = torch.load(split / "final.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    rows_a, rows_b = _log(whole), _log(split)
    assert [r["step"] for r in rows_b] == ["1", "2", "3", "4"]
    assert [r["loss"] for r in rows_a] == [r["loss"] for r in rows_b]
    assert rows_a[1]["val_ha3"] != ""  # validation ran at step 2
    assert all(float(r["peak_reprojection"]) > 0 for r in rows_a)


def test_the_medium_teaches_a_small_student_map_for_map(tmp_path):
    from edgepoint_ros.models.edgepoint_net import load_weights, size_config
    cfg = replace(_tiny(tmp_path, 2), teacher="edgepoint", size="small", det_target="dense",
                  w_peak_reprojection=0.0)
    train(tmp_path / "small", cfg, progress=False)
    rows = _log(tmp_path / "small")
    assert all(float(r["desc_distill"]) > 0 and float(r["det_distill"]) > 0 for r in rows)
    assert load_weights(tmp_path / "small" / "final.pt").config == size_config("small")
    with pytest.raises(ValueError, match="size must be one of"):
        train(tmp_path / "bad", replace(cfg, size="huge"), progress=False)


def test_the_aliked_teacher_trains_the_detector_without_descriptor_distillation(tmp_path):
    from dataclasses import replace
    cfg = replace(_tiny(tmp_path, 2), teacher="aliked", fuse_teacher=True, w_peak_reprojection=0.0)
    train(tmp_path / "aliked", cfg, progress=False)
    rows = _log(tmp_path / "aliked")
    assert len(rows) == 2
    assert all(float(r["det_distill"]) > 0 and r["desc_distill"] == "" for r in rows)
    # the same first step against the teacher's dense score map instead of its peaks
    train(tmp_path / "dense", replace(cfg, steps=1, det_target="dense"), progress=False)
    dense = _log(tmp_path / "dense")[0]
    assert dense["loss"] != rows[0]["loss"] and dense["contrastive"] == rows[0]["contrastive"]
    with pytest.raises(ValueError, match="det_target must be 'peaks' or 'dense'"):
        train(tmp_path / "bad", replace(cfg, det_target="soft"), progress=False)
    assert not (tmp_path / "bad").exists()    # refused before the run directory is made


def test_the_aliked_descriptor_teacher_distils_match_similarities(tmp_path):
    from dataclasses import replace
    cfg = replace(_tiny(tmp_path, 2), teacher="aliked+sddh", w_peak_reprojection=0.0,
                  w_desc_distill=1.0)
    train(tmp_path / "sddh", cfg, progress=False)
    rows = _log(tmp_path / "sddh")
    assert len(rows) == 2 and all(float(r["desc_distill"]) > 0 for r in rows)
    # weight 0: the term is not computed at all
    train(tmp_path / "off", replace(cfg, steps=1, w_desc_distill=0.0), progress=False)
    assert _log(tmp_path / "off")[0]["desc_distill"] == ""


def test_a_run_records_its_pictures_and_resumes_only_on_the_same_ones(tmp_path):
    import json
    run = tmp_path / "run"
    train(run, _tiny(tmp_path, 1), progress=False)
    data = json.loads((run / "data.json").read_text())
    assert len(data["training_pictures"]) > 10 and data["held_out_pictures"]
    assert not set(data["training_pictures"]) & set(data["held_out_pictures"])
    # as if the run had begun without the first picture and with one now gone
    first = data["training_pictures"][0]
    data["training_pictures"] = data["training_pictures"][1:] + ["/elsewhere/gone.jpg"]
    (run / "data.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=re.escape(
            f"training pictures changed since the run began (1 added, e.g. ['{first}']; "
            "1 gone, e.g. ['/elsewhere/gone.jpg'])")):
        train(run, _tiny(tmp_path, 2), progress=False)


def test_the_data_script_installs_the_recorded_packages():
    from edgepoint_ros.training.data import TRAINING_PACKAGES
    script = (locations.REPO_ROOT / "scripts" / "get_training_data.sh").read_text()
    listed = script.split("pkgs=(", 1)[1].split(")", 1)[0].split()
    assert sorted(listed) == sorted(TRAINING_PACKAGES)


def test_a_run_refuses_another_seed_in_the_same_directory(tmp_path):
    train(tmp_path / "run", _tiny(tmp_path, 1), progress=False)
    other = _tiny(tmp_path, 2)
    other.seed = 1
    with pytest.raises(ValueError, match="different seed/batch size"):
        train(tmp_path / "run", other, progress=False)


def test_a_run_asked_for_a_gpu_it_does_not_have_says_so_before_touching_its_directory(
        tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on CI's machines
    cfg = _tiny(tmp_path, 1)
    cfg.device = "cuda"
    with pytest.raises(RuntimeError,
                       match=r"training device cuda: torch \S+ sees no CUDA GPU \(CUDA build: "):
        train(tmp_path / "run", cfg, progress=False)
    assert not (tmp_path / "run").exists()
    cfg.device = "tpu"
    with pytest.raises(ValueError, match="training device must be cpu or cuda, got 'tpu'"):
        train(tmp_path / "run", cfg, progress=False)


@pytest.mark.parametrize("argv, problem", [
    (["--scale-range", "2"], "--scale-range must be LO,HI"),
    (["--scale-range", "2,1"], "--scale-range needs 0 < LO < HI"),
    (["--init", "/nonexistent.pt"], "--init: no such checkpoint /nonexistent.pt"),
    (["--perspective", "0.9"], "--perspective must be in [0, 0.5]; got 0.9"),
    (["--grayscale", "-1"], "--grayscale must be in [0, 1.0]; got -1.0"),
    (["--mild-fraction", "2"], "--mild-fraction must be in [0, 1.0]; got 2.0"),
    (["--max-tilt", "85"], "--max-tilt must be in [0, 80.0]; got 85.0"),
])
def test_train_cli_names_bad_arguments(argv, problem, capsys):
    with pytest.raises(SystemExit):
        train_cli.main(argv)
    assert problem in capsys.readouterr().err


def test_grayscale_pairs_are_grey(bank):
    def pair(seed, grey):
        return make_pair(bank, np.random.default_rng(seed),
                         PairConfig(size=64, source_size=80, grayscale=grey))

    def channel_agreement(view):
        v = view.astype(np.float32)
        return min(_zncc(v[..., 0], v[..., 1]), _zncc(v[..., 1], v[..., 2]))

    for seed in (5, 8, 12):                      # colour photos in this bank
        # grey: only the photometric colour gain (and clipping) separates channels
        assert all(channel_agreement(view) > 0.95 for view in pair(seed, 1.0)[:2])
        assert all(channel_agreement(view) < 0.9 for view in pair(seed, 0.0)[:2])


def test_mild_pairs_stay_within_the_mild_ranges(bank, monkeypatch):
    from edgepoint_ros.training.data import MILD_STRONG, random_homography
    monkeypatch.setitem(MILD_STRONG, "perspective", 0.0)   # rotation and zoom read exactly
    cfg = PairConfig(size=64, source_size=80, max_rotation_deg=90.0, scale_range=(0.35, 2.5),
                     perspective=0.0, mild_fraction=1.0)
    wide = PairConfig(size=64, source_size=80, max_rotation_deg=90.0, scale_range=(0.35, 2.5),
                      perspective=0.0)

    def rotation_and_zoom(c, seed):       # of the view -> source map (no perspective here)
        a = np.linalg.inv(random_homography(np.random.default_rng(seed), c, strong=True))
        return abs(np.degrees(np.arctan2(a[1, 0], a[0, 0]))), 1.0 / np.sqrt(abs(np.linalg.det(a[:2, :2])))

    mild = [rotation_and_zoom(cfg, seed) for seed in range(40)]
    full = [rotation_and_zoom(wide, seed) for seed in range(40)]
    lo, hi = MILD_STRONG["scale_range"]
    assert all(r <= MILD_STRONG["max_rotation_deg"] + 1e-6 and lo - 1e-6 <= z <= hi + 1e-6
               for r, z in mild)
    assert max(r for r, _ in full) > 45 and min(z for _, z in full) < 0.6
    # no extra draw when the fraction is 0: a run's pairs replay as before
    assert np.array_equal(
        make_pair(bank, np.random.default_rng(3), PairConfig(size=64, source_size=80))[2],
        make_pair(bank, np.random.default_rng(3), PairConfig(size=64, source_size=80,
                                                             mild_fraction=0.0))[2])


def _local_affine(h, x, y):
    """Jacobian of the homography h at (x, y)."""
    d = h[2] @ [x, y, 1.0]
    return (h[:2, :2] * d - np.outer(h[:2] @ [x, y, 1.0], h[2, :2])) / d ** 2


def test_tilted_views_squeeze_one_direction_with_a_bounded_scale_gradient(bank):
    from edgepoint_ros.training.data import random_homography, tilted_square
    squeezes = []
    for seed in range(60):
        quad = tilted_square(np.random.default_rng(seed), 70.0)
        h = cv2.getPerspectiveTransform(np.float32([[-1, -1], [1, -1], [1, 1], [-1, 1]]),
                                        quad).astype(np.float64)
        singular = np.linalg.svd(_local_affine(h, 0, 0), compute_uv=False)
        areas = [abs(np.linalg.det(_local_affine(h, x, y))) for x in (-1, 1) for y in (-1, 1)]
        assert singular[1] == pytest.approx(1.0, abs=1e-3)       # across the tilt axis: unchanged
        assert 1.0 - 1e-3 <= singular[0] <= 1 / np.cos(np.radians(70.0)) + 1e-3
        assert max(areas) / min(areas) < 3.2
        squeezes.append(singular[0])
    assert max(squeezes) > 2.5 and min(squeezes) < 1.2          # graf 1-5's 2.8 is in reach
    # a tilted strong view differs from the jittered one; no draw at fraction 0
    base = dict(size=64, source_size=80, max_rotation_deg=90.0, scale_range=(0.35, 2.5))
    tilted = random_homography(np.random.default_rng(1), PairConfig(**base, tilt_fraction=1.0), True)
    jitter = random_homography(np.random.default_rng(1), PairConfig(**base), True)
    assert not np.allclose(tilted, jitter)
    assert np.array_equal(
        make_pair(bank, np.random.default_rng(3), PairConfig(size=64, source_size=80))[2],
        make_pair(bank, np.random.default_rng(3), PairConfig(size=64, source_size=80,
                                                             tilt_fraction=0.0))[2])


def test_fused_teacher_scores_agree_across_views():
    """A peak seen in A only is carried into B at H_ab(p), at half strength."""
    h_ab = torch.tensor([[[1.0, 0.0, 5.0], [0.0, 1.0, 3.0], [0.0, 0.0, 1.0]]])
    scores_a = torch.zeros(1, 1, 32, 32)
    scores_a[0, 0, 10, 12] = 1.0  # (x 12, y 10) in A -> (17, 13) in B
    scores_b = torch.zeros(1, 1, 32, 32)
    mask = torch.ones(1, 32, 32)
    fused_a, fused_b = losses.fuse_teacher_scores(scores_a, scores_b, h_ab, mask, mask)
    assert fused_b[0, 0, 13, 17] == pytest.approx(0.5)
    assert fused_a[0, 0, 10, 12] == pytest.approx(0.5)
    assert fused_b.sum() == pytest.approx(0.5) and fused_a.sum() == pytest.approx(0.5)


def _blob_logits(centres, size=48):
    ys, xs = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    prob = sum(torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 1.5) for x, y in centres)
    return torch.logit(prob.clamp(1e-4, 1 - 1e-4))[None, None]


def test_peak_reprojection_measures_sub_pixel_disagreement():
    """Peaks at sub-pixel positions, B = A shifted by (2.4, -1.3): the loss is
    smallest for the true shift, grows with a wrong one, and its gradient
    reaches both views; with the run-time soft-argmax it matches detection.py."""
    shift = (2.4, -1.3)
    centres = [(12.3, 14.6), (30.7, 20.2), (22.5, 33.8)]
    logits_a = _blob_logits(centres).requires_grad_(True)
    logits_b = _blob_logits([(x + shift[0], y + shift[1]) for x, y in centres]).requires_grad_(True)
    mask = torch.ones(1, 48, 48)

    def loss(dx, dy=shift[1]):
        h_ab = torch.tensor([[[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]]])
        return losses.peak_reprojection(logits_a, logits_b, h_ab, mask, mask, k=3)

    right, off_half, off_one = loss(shift[0]), loss(shift[0] + 0.5), loss(shift[0] + 1.0)
    # not 0 for the true shift: the peaks' dispersion (~0.4 px for these blobs), and
    # the soft-argmax (temperature 0.1) leans to the pixel centre
    assert right < 0.8 and right + 0.15 < off_half < off_one and right + 0.15 < loss(shift[0] - 0.5)
    # the same peaks flattened (probabilities x 0.3) cost more: no escape into flat maps
    h_ab = torch.tensor([[[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]], [0.0, 0.0, 1.0]]])
    flat_a, flat_b = (torch.logit(0.3 * torch.sigmoid(x.detach())) for x in (logits_a, logits_b))
    assert losses.peak_reprojection(flat_a, flat_b, h_ab, mask, mask, k=3) > right + 0.5
    right.backward()
    assert logits_a.grad.abs().sum() > 0 and logits_b.grad.abs().sum() > 0

    from edgepoint_ros.detection import detect_keypoints
    prob = torch.sigmoid(logits_a.detach())
    keypoints, _ = detect_keypoints(prob[0, 0].numpy(), nms_radius=2, border=3)
    centres_px = torch.from_numpy(keypoints).round().long()[None]
    refined = losses._soft_argmax_at(prob, centres_px, 2, 0.1)[0][0].numpy()
    np.testing.assert_allclose(np.sort(refined, 0), np.sort(keypoints, 0), atol=1e-5)


def test_one_file_per_picture_and_a_split_that_does_not_move(tmp_path):
    """A Plasma wallpaper ships one picture at several sizes (light and dark,
    plus a small screenshot): training takes its largest file once. Two
    wallpapers with files of the same size are two pictures. The named
    held-out pictures stay held out whatever else the folders hold."""
    rng = np.random.default_rng(1)
    for name, sizes in {"Alpha": ("800x600", "1600x1200"), "Beta": ("800x600",),
                        "Gamma": ("640x480",)}.items():
        for size in sizes:
            folder = tmp_path / "wallpapers" / name / "contents" / "images"
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{size}.png"), rng.integers(0, 255, (48, 64, 3), np.uint8))
        cv2.imwrite(str(tmp_path / "wallpapers" / name / "contents" / "screenshot.png"),
                    rng.integers(0, 255, (480, 640, 3), np.uint8))   # bigger file, still a preview
    cv2.imwrite(str(tmp_path / "photo.jpg"), rng.integers(0, 255, (48, 64, 3), np.uint8))
    (tmp_path / "trip").mkdir()              # another picture under the same file name
    cv2.imwrite(str(tmp_path / "trip" / "photo.jpg"), rng.integers(0, 255, (48, 64, 3), np.uint8))
    paths = find_training_images((tmp_path,))
    assert [image_key(p) for p in paths] == ["photo", "photo", "Alpha", "Beta", "Gamma"]
    assert paths[2].name == "1600x1200.png"
    training, held_out = split_holdout(paths, held_out=("Beta", "photo"))
    assert [image_key(p) for p in held_out] == ["photo", "photo", "Beta"]
    assert [image_key(p) for p in training] == ["Alpha", "Gamma"]
    cv2.imwrite(str(tmp_path / "another.jpg"), rng.integers(0, 255, (48, 64, 3), np.uint8))
    _, held_again = split_holdout(find_training_images((tmp_path,)), held_out=("Beta", "photo"))
    assert held_again == held_out
