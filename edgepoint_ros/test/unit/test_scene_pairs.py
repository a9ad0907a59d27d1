"""3D-structure pairs (training/scene_pairs.py): a pixel of view A carried
into view B lands on the same point of the same plane; occluded points are
masked; the views render the same texture where they agree."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgepoint_ros.training.data import find_training_images, load_image_bank
from edgepoint_ros.training.scene_pairs import (SceneConfig, make_scene_pair, random_scene,
                                                ray_plane, render)

OPENCV_DATA = "/usr/share/doc/opencv-doc/examples/data"
SEEDS = range(8)


@pytest.fixture(scope="module")
def bank():
    paths = find_training_images((OPENCV_DATA,))
    assert paths, "opencv-doc images missing: run scripts/setup.sh"
    return load_image_bank(paths[:12])


@pytest.fixture(scope="module")
def pairs(bank):
    cfg = SceneConfig(size=128)
    return [make_scene_pair(bank, np.random.default_rng(seed), cfg) for seed in SEEDS]


def _grid(size):
    ys, xs = np.mgrid[0:size, 0:size]
    return np.column_stack([xs.ravel(), ys.ravel()]).astype(np.float64)


def test_a_pixel_of_a_lands_in_b_on_the_same_point_of_the_same_plane(pairs):
    for pair in pairs:
        cam_a, cam_b = pair.cameras
        size = pair.view_a.shape[0]
        valid = pair.valid_ab.ravel()
        assert 0.2 < valid.mean() < 0.98          # some parallax and occlusion, mostly seen
        seen = _grid(size)[valid]
        planes_a = pair.plane_a.ravel()[valid]
        flow = pair.flow_ab.reshape(-1, 2)[valid].astype(np.float64)
        for k, plane in enumerate(pair.planes):
            mine = planes_a == k
            if not mine.any():
                continue
            _, st_a, points_a = ray_plane(plane, cam_a, seen[mine])
            depth_b, st_b, points_b = ray_plane(plane, cam_b, flow[mine])
            assert np.isfinite(depth_b).all()
            # float32 flow: a few thousandths of a pixel, so well under a texture pixel
            assert np.abs(st_a - st_b).max() < 0.05
            assert np.linalg.norm(points_a - points_b, axis=1).max() < 1e-3 * points_a[:, 2].max()
            # and that plane is the one B shows there
            assert (pair.plane_b[np.round(flow[mine][:, 1]).astype(int),
                                 np.round(flow[mine][:, 0]).astype(int)] == k).all()


def test_occluded_points_are_masked(pairs):
    occluded_total = 0
    for pair in pairs:
        cam_a, cam_b = pair.cameras
        size = pair.view_a.shape[0]
        pixels = _grid(size)
        centre, rays = cam_a.rays(pixels)
        points = centre + rays * pair.depth_a.reshape(-1, 1)
        projected, z_b = cam_b.project(points)
        inside = ((projected >= 0) & (projected <= size - 1)).all(1)
        # nearest surface along B's ray through the projection, over all planes
        nearest = np.min([ray_plane(p, cam_b, projected)[0] for p in pair.planes], axis=0)
        occluded = inside & (nearest < z_b * (1 - 1e-4))
        occluded_total += occluded.sum()
        assert not (pair.valid_ab.ravel() & occluded).any()
        assert not (pair.valid_ab.ravel() & ~inside).any()       # outside B: masked too
        # and what is valid is seen: the surface there is the point itself
        valid = pair.valid_ab.ravel()
        assert np.allclose(nearest[valid], z_b[valid], rtol=1e-4)
    assert occluded_total > 0.02 * len(SEEDS) * pairs[0].view_a.size / 3   # occlusion happens


def test_the_two_views_agree_where_a_point_is_seen_in_both(bank):
    cfg = SceneConfig(size=128)
    for seed in SEEDS:
        planes, cam_a, cam_b = random_scene(bank, np.random.default_rng(seed), cfg)
        light = np.array([0.0, 0.0, 1.0])
        image_a, index_a, depth_a = render(planes, cam_a, cfg.size, light, cfg.ambient)
        image_b, index_b, _ = render(planes, cam_b, cfg.size, light, cfg.ambient)
        from edgepoint_ros.training.scene_pairs import correspondence
        flow, valid = correspondence(planes, cam_a, cam_b, index_a, depth_a, index_b)
        b_in_a = cv2.remap(image_b, flow[..., 0], flow[..., 1], cv2.INTER_LINEAR)
        error = np.abs(b_in_a - image_a).mean(-1)
        # bilinear resampling at different scales: small where seen, large elsewhere
        assert np.median(error[valid]) < 0.03
        if (~valid).sum() > 200:
            assert np.median(error[valid]) < np.median(error[~valid])


def test_b_to_a_undoes_a_to_b(pairs):
    for pair in pairs:
        size = pair.view_a.shape[0]
        both = pair.valid_ab.copy()
        flow = pair.flow_ab[both]
        back = cv2.remap(pair.flow_ba, flow[None, :, 0], flow[None, :, 1], cv2.INTER_LINEAR)[0]
        ok = cv2.remap(pair.valid_ba.astype(np.float32), flow[None, :, 0], flow[None, :, 1],
                       cv2.INTER_LINEAR)[0] == 1.0        # all four neighbours valid in B
        pixels = _grid(size)[both.ravel()]
        assert ok.mean() > 0.9
        assert np.abs(back[ok] - pixels[ok]).max() < 0.05


def test_a_scene_is_drawn_from_its_seed_and_every_pixel_shows_a_surface(bank, pairs):
    again = make_scene_pair(bank, np.random.default_rng(SEEDS[0]), SceneConfig(size=128))
    for name in ("view_a", "view_b", "flow_ab", "valid_ab", "flow_ba", "valid_ba"):
        assert np.array_equal(getattr(again, name), getattr(pairs[0], name)), name
    for pair in pairs:
        for depth in (pair.depth_a, pair.depth_b):
            assert np.isfinite(depth).all() and (depth > 0).all()
        assert pair.view_a.dtype == np.uint8 and pair.view_a.shape == (128, 128, 3)
        assert len(np.unique(pair.plane_a)) >= 2           # something stands before the background


# ------------------------------------------------------------ in the losses and the trainer

def _homography_batch(bank, n=3, size=64):
    from edgepoint_ros.training.data import PairConfig, make_pair
    rng = np.random.default_rng(11)
    pairs = [make_pair(bank, rng, PairConfig(size=size, source_size=96)) for _ in range(n)]
    return pairs


def test_a_dense_warp_of_a_homography_pair_carries_points_as_the_homography(bank):
    import torch
    from edgepoint_ros.training import losses
    from edgepoint_ros.training.scene_pairs import homography_flow
    pairs = _homography_batch(bank)
    h = torch.from_numpy(np.stack([p[2] for p in pairs]))
    mask_a = torch.from_numpy(np.stack([p[3] for p in pairs]))
    mask_b = torch.from_numpy(np.stack([p[4] for p in pairs]))
    flows = [homography_flow(p[2], p[3], p[4]) for p in pairs]
    warp = losses.DenseWarp(*(torch.from_numpy(np.stack(parts)) for parts in zip(*flows)))
    points = torch.rand(3, 200, 2, generator=torch.Generator().manual_seed(0)) * 63
    exact, none = losses.carry(points, h)
    dense, seen = losses.carry(points, warp)
    assert none is None
    valid = losses.point_is_valid(points, mask_a) & losses.point_is_valid(exact, mask_b)
    assert seen.sum() > 0.5 * valid.sum()
    # seen by the warp: valid by the masks, a little stricter near their edges
    assert not (seen & ~losses.point_is_valid(points, mask_a)).any()
    # bilinear reading of a projective map: within a few hundredths of a pixel
    assert (dense - exact)[seen].abs().max() < 0.05
    back, seen_back = losses.carry(dense, losses.invert(warp))
    both = seen & seen_back
    assert (back - points)[both].abs().max() < 0.05

    # the losses agree (random maps: a stand-in student)
    gen = torch.Generator().manual_seed(1)
    logits_a, logits_b = torch.randn(3, 1, 64, 64, generator=gen), torch.randn(3, 1, 64, 64, generator=gen)
    desc_a, desc_b = torch.randn(3, 16, 8, 8, generator=gen), torch.randn(3, 16, 8, 8, generator=gen)
    rep_h = losses.repeatability(logits_a, logits_b, h, mask_a, mask_b)
    rep_d = losses.repeatability(logits_a, logits_b, warp, mask_a, mask_b)
    assert abs(rep_h.item() - rep_d.item()) < 0.02 * rep_h.item()
    fused_h = losses.fuse_teacher_scores(logits_a.sigmoid(), logits_b.sigmoid(), h, mask_a, mask_b)
    fused_d = losses.fuse_teacher_scores(logits_a.sigmoid(), logits_b.sigmoid(), warp, mask_a, mask_b)
    for x, y in zip(fused_h, fused_d):
        assert (x - y).abs().mean() < 0.01
    con_h, _ = losses.descriptor_contrastive(desc_a, desc_b, points, h, mask_a, mask_b, (64, 64))
    con_d, _ = losses.descriptor_contrastive(desc_a, desc_b, points, warp, mask_a, mask_b, (64, 64))
    assert abs(con_h.item() - con_d.item()) < 0.05 * con_h.item()


def test_the_losses_read_a_scene_pairs_correspondences_and_masks(pairs):
    import torch
    from edgepoint_ros.training import losses
    pair = pairs[0]
    warp = losses.DenseWarp(*(torch.from_numpy(x[None]) for x in (
        pair.flow_ab, pair.valid_ab, pair.flow_ba, pair.valid_ba)))
    size = pair.view_a.shape[0]
    pixels = torch.from_numpy(_grid(size)[None].astype(np.float32))
    carried, seen = losses.carry(pixels, warp)
    assert torch.equal(seen[0], torch.from_numpy(pair.valid_ab.ravel()))   # integer pixels: exact
    assert torch.equal(carried[0], torch.from_numpy(pair.flow_ab.reshape(-1, 2)))
    # a point between a seen and an unseen pixel is not seen
    edge = np.argwhere(pair.valid_ab[:, :-1] & ~pair.valid_ab[:, 1:])[0]
    between = torch.tensor([[[edge[1] + 0.5, float(edge[0])]]], dtype=torch.float32)
    assert not losses.carry(between, warp)[1].item()


def test_a_run_trains_on_a_mix_of_homography_and_3d_pairs(tmp_path, monkeypatch):
    import csv
    from edgepoint_ros.training import losses, scene_pairs
    from edgepoint_ros.training.data import PairConfig
    from edgepoint_ros.training.trainer import TrainConfig, _batch, train
    cfg = TrainConfig(steps=2, batch_size=2, teacher="none", warmup_steps=1, checkpoint_every=1,
                      validate_every=2, validation_pairs=1, num_threads=1, points_per_pair=32,
                      image_roots=(OPENCV_DATA,), w_peak_reprojection=1.0, peak_keypoints=16,
                      pair=PairConfig(size=64, source_size=96, pairs_3d=0.5))
    bank = load_image_bank(find_training_images((OPENCV_DATA,))[:6])
    made = []
    make = scene_pairs.make_scene_pair
    monkeypatch.setattr(scene_pairs, "make_scene_pair",
                        lambda *a, **k: made.append(make(*a, **k)) or made[-1])
    total = 0
    for step in range(6):
        _, _, warp, mask_a, _ = _batch(bank, np.random.default_rng([0, step]), cfg)
        assert isinstance(warp, losses.DenseWarp) and warp.flow_ab.shape == (2, 64, 64, 2)
        for scene in made:                # the scenes drawn are in the batch, masks all ones
            i = [np.array_equal(scene.flow_ab, f.numpy()) for f in warp.flow_ab].index(True)
            assert np.array_equal(warp.valid_ab[i].numpy(), scene.valid_ab) and mask_a[i].all()
        total += len(made)
        made.clear()
    assert 0 < total < 12                 # both kinds of pair (12 pairs, half of them scenes)
    train(tmp_path / "run", cfg, progress=False)
    with open(tmp_path / "run" / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(np.isfinite(float(r["loss"])) for r in rows)
    assert all(float(r["contrastive"]) > 0 and float(r["repeatability"]) > 0 for r in rows)
