"""The trainer on the image index (issue 19): a seeded subset that does not
move, a streaming bank of bounded memory, the images a run used recorded and
pinned, and the trainer without `--image-index` unchanged (same pictures, same
pairs)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import locations
from edgepoint_ros.cli import train as train_cli
from edgepoint_ros.training.data import (PairConfig, TRAINING_PACKAGES, find_training_images,
                                         make_pair, package_files, split_holdout)
from edgepoint_ros.training.index_data import (StreamingImageBank, rank_key, run_image_path,
                                               select_images)
from edgepoint_ros.training.trainer import TrainConfig, _batch, train

OPENCV_DATA = "/usr/share/doc/opencv-doc/examples/data"


def _entries(n: int, start: int = 0) -> list[dict]:
    return [{"id": hashlib.sha1(str(i).encode()).hexdigest()[:16], "package": "pkg",
             "path": f"/usr/share/pkg/tex{i}.jpg", "member": None} for i in range(start, start + n)]


def _fake_index(root: Path, n: int, start: int = 0) -> list[dict]:
    """An index folder as image_index.py writes it: images/<id[:2]>/<id>.jpg + manifest.jsonl."""
    rng = np.random.default_rng(start)
    entries = _entries(n, start)
    with open(root / "manifest.jsonl", "a") as f:
        for entry in entries:
            entry["cached"] = f"images/{entry['id'][:2]}/{entry['id']}.jpg"
            path = root / entry["cached"]
            path.parent.mkdir(parents=True, exist_ok=True)
            image = cv2.GaussianBlur(rng.integers(0, 256, (140, 180, 3), dtype=np.uint8), (3, 3), 0)
            cv2.imwrite(str(path), image)
            f.write(json.dumps(entry) + "\n")
    return entries


# ------------------------------------------------------------ the subset

def test_a_subset_is_the_same_for_a_seed_whatever_the_manifest_order():
    entries = _entries(200)
    chosen, _ = select_images(entries, 50, seed=3)
    again, _ = select_images(entries[::-1], 50, seed=3)
    assert [e["id"] for e in chosen] == [e["id"] for e in again]
    assert len({e["id"] for e in chosen}) == 50
    # another seed: another subset; the subsets of one seed are nested
    other, _ = select_images(entries, 50, seed=4)
    assert {e["id"] for e in other} != {e["id"] for e in chosen}
    smaller, _ = select_images(entries, 20, seed=3)
    assert [e["id"] for e in smaller] == [e["id"] for e in chosen[:20]]
    # all of them (0), in the seed's ranking order
    everything, _ = select_images(entries, 0, seed=3)
    assert len(everything) == 200 and everything[:50] == chosen
    keys = [rank_key(e["id"], 3) for e in everything]
    assert keys == sorted(keys)


def test_a_grown_index_keeps_the_images_that_still_rank_first():
    entries = _entries(200)
    chosen = {e["id"] for e in select_images(entries, 50, seed=0)[0]}
    grown = {e["id"] for e in select_images(entries + _entries(100, 200), 50, seed=0)[0]}
    newcomers = grown - {e["id"] for e in entries}
    assert grown - newcomers <= chosen          # no old image joins, some may leave for new ones
    assert len(chosen - grown) == len(newcomers)


def test_a_subset_leaves_out_held_out_pictures_and_asks_no_more_than_there_are():
    entries = _entries(10)
    entries[3]["path"] = "/usr/share/games/x/Wood.jpg"                   # a held-out name
    entries[5].update(path="/usr/share/games/x/data.zip", member="maps/MilkyWay.png")
    chosen, dropped = select_images(entries, 0, seed=0, held_out=("Wood", "MilkyWay"))
    assert dropped == 2 and {e["id"] for e in chosen} == {e["id"] for e in entries} - {
        entries[3]["id"], entries[5]["id"]}
    with pytest.raises(ValueError, match="the index has only 8 training images"):
        select_images(entries, 9, seed=0, held_out=("Wood", "MilkyWay"))


# ------------------------------------------------------------ the streaming bank

def test_the_streaming_bank_holds_a_bounded_number_of_decoded_images(tmp_path):
    entries = _fake_index(tmp_path, 12)
    paths = [tmp_path / e["cached"] for e in entries]
    bank = StreamingImageBank(paths, max_decoded=3)
    assert len(bank) == 12 and bank.held == 0          # nothing decoded up front
    rng = np.random.default_rng(0)
    cfg = PairConfig(size=64, source_size=96)
    for _ in range(40):
        view_a, view_b, h_ab, _, _ = make_pair(bank, rng, cfg)
        assert view_a.shape == (64, 64, 3) and bank.held <= 3
    assert bank.held == 3 and bank.decodes > 12        # images were dropped and decoded again
    expected = cv2.cvtColor(cv2.imread(str(paths[7])), cv2.COLOR_BGR2RGB)
    assert np.array_equal(bank[7], expected) and np.array_equal(bank[-5], expected)
    decodes = bank.decodes
    bank[7]                                             # held: not decoded again
    assert bank.decodes == decodes
    with pytest.raises(IndexError):
        bank[12]


def test_a_pair_from_the_streaming_bank_is_the_pair_from_the_list(tmp_path):
    entries = _fake_index(tmp_path, 6)
    paths = [tmp_path / e["cached"] for e in entries]
    listed = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    streamed = StreamingImageBank(paths, max_decoded=1)
    cfg = PairConfig(size=64, source_size=96)
    for seed in range(5):
        a = make_pair(listed, np.random.default_rng(seed), cfg)
        b = make_pair(streamed, np.random.default_rng(seed), cfg)
        assert all(np.array_equal(x, y) for x, y in zip(a, b))


# ------------------------------------------------------------ a run on the index

def _tiny(index: Path, steps: int, max_images: int = 8) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=1, teacher="none", warmup_steps=1,
                       checkpoint_every=1, validate_every=100, validation_pairs=1,
                       num_threads=1, points_per_pair=32, image_roots=(OPENCV_DATA,),
                       image_index=str(index), max_images=max_images, image_seed=5,
                       max_decoded=2, pair=PairConfig(size=64, source_size=96))


def test_a_run_records_and_pins_the_images_it_trains_on(tmp_path):
    index, run = tmp_path / "index", tmp_path / "run"
    index.mkdir()
    entries = _fake_index(index, 20)
    train(run, _tiny(index, 1), progress=False)
    data = json.loads((run / "data.json").read_text())
    expected = [e["id"] for e in select_images(entries, 8, seed=5)[0]]
    assert [e["id"] for e in data["training_images"]] == expected
    assert data["training_pictures"] == [str(run_image_path(run, i)) for i in expected]
    assert data["image_index"]["index_images"] == 20 and data["image_index"]["max_images"] == 8
    assert data["held_out_pictures"] and not set(data["training_pictures"]) & set(
        data["held_out_pictures"])
    for image_id in expected:                    # pinned: the index's own file, linked
        pinned = run_image_path(run, image_id)
        assert pinned.read_bytes() == (index / "images" / image_id[:2] / f"{image_id}.jpg").read_bytes()

    # the index grows and loses a cached image the run uses: the run resumes on its own
    _fake_index(index, 30, start=20)
    (index / "images" / expected[0][:2] / f"{expected[0]}.jpg").unlink()
    train(run, _tiny(index, 2), progress=False)
    assert json.loads((run / "data.json").read_text()) == data
    assert (run / "final.pt").exists()

    # the same directory with another subset is another run
    with pytest.raises(ValueError, match="max_images 8, not 9"):
        train(run, _tiny(index, 3, max_images=9), progress=False)


def test_a_stopped_and_resumed_index_run_is_the_uninterrupted_run(tmp_path):
    import torch
    index = tmp_path / "index"
    index.mkdir()
    _fake_index(index, 20)
    whole, split = tmp_path / "whole", tmp_path / "split"
    train(whole, _tiny(index, 3), progress=False)
    train(split, _tiny(index, 3), progress=False, stop_at=1)
    _fake_index(index, 10, start=20)                     # the index grows in between
    train(split, _tiny(index, 3), progress=False)
    a = torch.load(whole / "final.pt", weights_only=True)["model"]
    b = torch.load(split / "final.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_on_the_trainers_pictures_cannot_continue_on_the_index(tmp_path):
    index, run = tmp_path / "index", tmp_path / "run"
    index.mkdir()
    _fake_index(index, 10)
    cfg = _tiny(index, 1)
    train(run, TrainConfig(**{**cfg.__dict__, "image_index": "", "max_images": 0,
                              "image_seed": 0}), progress=False)
    with pytest.raises(ValueError, match="was started with image_index ''"):
        train(run, _tiny(index, 2), progress=False)


@pytest.mark.parametrize("argv, problem", [
    (["--max-images", "10"], "--max-images and --image-seed need --image-index"),
    (["--image-index", "/nonexistent", "--max-images", "10"],
     "--image-index: no manifest.jsonl in /nonexistent"),
    (["--image-index", "/nonexistent", "--max-images", "-1"], "--max-images must be >= 0"),
])
def test_train_cli_names_bad_index_arguments(argv, problem, capsys):
    with pytest.raises(SystemExit):
        train_cli.main(argv)
    assert problem in capsys.readouterr().err


# ------------------------------------------------------------ without the index: unchanged

def test_the_default_pictures_are_those_of_the_shipped_run():
    """The shipped v21 and its recipe's 120-image point: the same training and
    held-out pictures, in the same order, although the image index installs
    more wallpaper packages (sway-backgrounds) into the trainer's folders."""
    record = locations.REPO_ROOT / "training_runs" / "edgepoint-v21" / "data.json"
    if package_files(TRAINING_PACKAGES) is None or not record.exists():
        pytest.skip("the Debian photo packages (scripts/get_training_data.sh) are not installed")
    data = json.loads(record.read_text())
    if not all(Path(p).exists() for p in data["training_pictures"]):
        pytest.skip("some of v21's pictures are not installed")
    train_paths, held = split_holdout(find_training_images())
    assert [str(p) for p in train_paths] == data["training_pictures"]
    assert [str(p) for p in held] == data["held_out_pictures"]


def test_default_roots_read_only_the_training_packages_files(tmp_path):
    info = tmp_path / "info"
    info.mkdir()
    (info / "mate-backgrounds.list").write_text("/usr/share/backgrounds/a.jpg\n/usr/share\n")
    (info / "gnome-backgrounds:amd64.list").write_text("/usr/share/backgrounds/b.jpg\n")
    assert package_files(["mate-backgrounds", "gnome-backgrounds"], info) == {
        "/usr/share/backgrounds/a.jpg", "/usr/share", "/usr/share/backgrounds/b.jpg"}
    assert package_files(["sway-backgrounds"], info) is None      # no dpkg: no filter
    # other roots are read whole
    for name in ("one.jpg", "two.jpg"):
        cv2.imwrite(str(tmp_path / name), np.zeros((8, 8, 3), np.uint8))
    assert [p.name for p in find_training_images((tmp_path,))] == ["one.jpg", "two.jpg"]


class _RecordingBank(list):
    """A bank that notes which of its images each pair was cut from."""

    def __init__(self, images):
        super().__init__(images)
        self.picked = []

    def __getitem__(self, i):
        self.picked.append(int(i))
        return super().__getitem__(i)


def _pair_summary(bank, cfg: TrainConfig, steps: int = 3):
    """The batches of steps 0..steps-1 of a run of seed 2 (trainer._batch,
    generator default_rng([2, step])), summed up in three parts:
    - the bank image each pair was cut from, in order;
    - per pair, where view A's corners land in view B by H_ab (x, y each,
      px, 2 decimals) and the areas of mask A and mask B (pixels);
    - per view (A then B of each pair), statistics of its uint8 pixels: the
      R, G, B means, the grey means of its four quadrants (TL, TR, BL, BR),
      the grey std and the mean absolute grey difference between neighbours
      (sharpness and noise), 2 decimals.
    Not the view pixels themselves: numpy's float32 `**` (the gamma in
    data.photometric) differs by one ulp between its AVX-512 and AVX2 kernels
    (on 20 % of random inputs), and OpenCV's float paths between its SIMD
    levels, which moves a few pixels by one grey level from one machine to
    another (a sha256 of the bytes did not survive it)."""
    bank = _RecordingBank(bank)
    side = cfg.pair.size
    corners = np.array([[0, 0, 1], [side, 0, 1], [side, side, 1], [0, side, 1]], np.float64)
    pairs, views = [], []
    for step in range(steps):
        view_a, view_b, h_ab, mask_a, mask_b = _batch(bank, np.random.default_rng([2, step]), cfg)
        for h, ma, mb in zip(h_ab.numpy().astype(np.float64), mask_a.numpy(), mask_b.numpy()):
            seen = corners @ h.T
            pairs.append((np.round(seen[:, :2] / seen[:, 2:], 2).ravel().tolist(),
                          [int(ma.sum()), int(mb.sum())]))
        as_uint8 = [(t.numpy() * 255).round().astype(np.uint8).transpose(0, 2, 3, 1)
                    for t in (view_a, view_b)]
        for a, b in zip(*as_uint8):
            for view in (a, b):
                grey = view.astype(np.float64).mean(axis=2)
                half = side // 2
                quadrants = [grey[:half, :half].mean(), grey[:half, half:].mean(),
                             grey[half:, :half].mean(), grey[half:, half:].mean()]
                sharpness = (np.abs(np.diff(grey, axis=0)).mean()
                             + np.abs(np.diff(grey, axis=1)).mean()) / 2
                views.append(np.round([*view.reshape(-1, 3).mean(axis=0), *quadrants,
                                       grey.std(), sharpness], 2).tolist())
    return bank.picked, pairs, views


def _v21_recipe():
    rng = np.random.default_rng(7)
    bank = [cv2.GaussianBlur(rng.integers(0, 256, (400 + 40 * i, 500, 3), dtype=np.uint8),
                             (5, 5), 0) for i in range(5)]
    cfg = TrainConfig(batch_size=3, pair=PairConfig(
        max_rotation_deg=90, scale_range=(0.35, 2.5), perspective=0.3, grayscale=0.3,
        heavy_blur=0.15, mild_fraction=0.5))
    return bank, cfg


def test_the_pairs_of_a_seed_are_those_the_shipped_recipe_trained_on():
    """The v21 recipe's pair settings, steps 0-2 of seed 2 (9 pairs) on a
    synthetic bank, against references taken at 213a67d, before the image
    index and 3D pairs were added (the batches of a run without them must not
    move: its 120-image point reproduces v21). Exact: the bank image of each
    pair. Within 0.02 px: where H_ab takes view A's corners (the homography,
    h22 = 1). Within 4 px: each mask's area. Within 0.05 grey levels: each
    view's channel means, quadrant means, std and sharpness (_pair_summary).
    Machines' SIMD differences (one grey level on a few pixels) move these by
    at most 0.001; a change of a draw, a range, a blur, the noise, the flip,
    the grey conversion or the interpolation by more than 0.05. Not seen: a
    change of a few hundred pixels by a fraction of a grey level on average
    (BORDER_REFLECT for BORDER_REFLECT101 in the reflection fill)."""
    picked, pairs, views = _pair_summary(*_v21_recipe())
    assert picked == V21_IMAGES
    assert len(pairs) == len(V21_PAIRS) and len(views) == len(V21_VIEWS)
    for i, ((seen, areas), (seen_ref, areas_ref)) in enumerate(zip(pairs, V21_PAIRS)):
        np.testing.assert_allclose(seen, seen_ref, rtol=0, atol=0.02, err_msg=f"pair {i}: H_ab")
        np.testing.assert_allclose(areas, areas_ref, rtol=0, atol=4, err_msg=f"pair {i}: masks")
    for i, (stats, ref) in enumerate(zip(views, V21_VIEWS)):
        np.testing.assert_allclose(stats, ref, rtol=0, atol=0.05,
                                   err_msg=f"pair {i // 2}, view {'AB'[i % 2]}")


# _pair_summary(*_v21_recipe()) at 213a67d (the commit before the image
# index) on an AVX-512 machine; the same with numpy's AVX-512 and OpenCV's
# AVX/AVX2 dispatch turned off (NPY_DISABLE_CPU_FEATURES,
# OPENCV_CPU_DISABLE), and the same at 0dbca7a and after. (The sha256 of the
# bytes this test held before, d7791e14..., is 213a67d's batches with numpy's
# AVX-512 off; with it on, 4 channel values of 3 views differ by one level.)
V21_IMAGES = [4, 1, 4, 1, 2, 3, 2, 3, 3]
V21_PAIRS = [   # (view A's corners (0,0) (256,0) (256,256) (0,256) in view B, mask areas A, B)
    ((-2.76, 90.58, 140.24, -18.82, 223.84, 157.17, 23.86, 370.55), (65536, 55989)),
    ((-73.99, 5.49, 206.57, 1.96, 237.15, 230.23, 1.01, 267.13), (65536, 65536)),
    ((-124.66, 237.61, -59.84, -288.5, 368.33, 206.62, 186.32, 292.77), (65536, 65536)),
    ((-41.01, 349.17, 49.19, -75.21, 371.28, -38.72, 412.38, 279.05), (65200, 65536)),
    ((25.97, 23.28, 255.71, 55.75, 256.2, 264.44, 51.84, 266.1), (65533, 64153)),
    ((-9.04, -75.63, 293.54, 3.69, 268.36, 227.86, 1.72, 202.86), (65536, 62625)),
    ((-4.7, 25.61, 224.95, -12.8, 302.08, 205.98, 90.59, 321.88), (65536, 64207)),
    ((176.13, 8.14, 197.06, 96.28, 87.23, 100.88, 83.92, 19.89), (65536, 11961)),
    ((-22.97, -27.56, 232.45, 13.26, 247.76, 269.46, -9.3, 256.2), (65536, 63866)),
]
V21_VIEWS = [   # R, G, B means; grey means TL, TR, BL, BR; grey std; sharpness
    (166.86, 166.86, 166.86, 166.29, 167.08, 167.28, 166.77, 9.61, 4.46),  # pair 0
    (117, 117, 117, 116.78, 116.6, 117.56, 117.04, 5.09, 0.81),
    (48.69, 48.61, 48.7, 48.12, 35.13, 62.19, 49.24, 11.7, 3.06),  # pair 1
    (39.67, 39.58, 39.44, 39.79, 39.44, 39.42, 39.61, 5.86, 2.85),
    (112.2, 112.09, 112.53, 125.03, 101.5, 122.6, 99.96, 18.54, 6.01),  # pair 2
    (111.39, 108.92, 92.3, 104.65, 103.39, 104.4, 104.38, 6.45, 1.44),
    (175.27, 175.13, 175.1, 199.93, 175.06, 175.09, 150.58, 20.96, 2.12),  # pair 3
    (75.65, 75.82, 75.74, 64.49, 84.91, 66.65, 86.88, 13.14, 1.78),
    (137.6, 137.2, 137.48, 137.46, 137.77, 137.26, 137.23, 5.53, 1.44),  # pair 4
    (115.02, 114.67, 115.04, 116.83, 146.55, 83, 113.27, 28.34, 5.79),
    (181.62, 181.62, 181.62, 214.95, 190.83, 172.56, 148.14, 28.54, 0.61),  # pair 5
    (160.75, 160.79, 160.76, 160.11, 161.05, 161.13, 160.77, 4.54, 2.44),
    (148.87, 148.57, 148.72, 148.84, 148.86, 148.59, 148.59, 6.75, 3.32),  # pair 6
    (39.5, 39.32, 39.47, 39.48, 39.47, 39.35, 39.41, 2.04, 0.76),
    (169.42, 169.71, 169.77, 191.2, 177.22, 162.03, 148.08, 19.58, 1.85),  # pair 7
    (170.77, 158.93, 131.77, 186.63, 163.12, 144.6, 120.94, 27.95, 0.51),
    (196.23, 196.33, 196.32, 144.29, 202.84, 195.19, 242.86, 41.12, 3.6),  # pair 8
    (127.56, 127.68, 127.43, 127.16, 127.43, 127.81, 127.81, 8.92, 3.75),
]


def test_the_ship_record_credits_an_index_runs_sources(tmp_path):
    index, run = tmp_path / "index", tmp_path / "run"
    index.mkdir()
    entries = _fake_index(index, 6)
    for i, entry in enumerate(entries):
        entry.update(package="pkg-b" if i % 3 else "pkg-a", licence="CC0" if i % 3 else "GPL-2+")
    (index / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    train(run, _tiny(index, 1, max_images=6), progress=False)
    (record,) = train_cli._lineage(run)
    assert record["training_pictures"] == 6 and record["image_index"]["max_images"] == 6
    assert record["images_per_package"] == {"pkg-a": 2, "pkg-b": 4}
    assert record["licences_per_package"] == {"pkg-a": "GPL-2+", "pkg-b": "CC0"}
