"""The training-image index on a small synthetic set, in seconds: filters
(size, texture, normal/UI maps by name, normal maps by colour, flat artwork,
cut-outs), de-duplication by perceptual hash, exclusion by hash, TGA through
Pillow, members of a .pk3 (zip) archive, idempotence and the manifest
(the trainer's streaming of it: test_index_training)."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from edgepoint_ros.training import image_index as ix
from edgepoint_ros.training.data import MAX_SIDE


def _photo(seed: int, size=(640, 480)) -> np.ndarray:
    """A textured RGB picture: smooth colour fields, noise at several scales, edges."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = np.zeros((h, w, 3), np.float32)
    for scale in (4, 16, 64):
        layer = rng.uniform(0, 1, (h // scale + 2, w // scale + 2, 3)).astype(np.float32)
        img += cv2.resize(layer, (w, h), interpolation=cv2.INTER_CUBIC) / 3
    for _ in range(25):
        centre = (int(rng.integers(w)), int(rng.integers(h)))
        cv2.circle(img, centre, int(rng.integers(5, 60)), rng.uniform(0, 1, 3).tolist(), -1)
    img += rng.normal(0, 0.04, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def _save(path: Path, rgb: np.ndarray, alpha: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if alpha is not None:
        Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(path)
    else:
        Image.fromarray(rgb).save(path, quality=95) if path.suffix == ".jpg" \
            else Image.fromarray(rgb).save(path)
    return path


def _normal_map(seed: int, size=(512, 512)) -> np.ndarray:
    """Tangent-space normals of a bumpy height field, as a normal map stores them."""
    height = cv2.GaussianBlur(_photo(seed, size)[..., 0].astype(np.float32), (0, 0), 3)
    gx, gy = cv2.Sobel(height, cv2.CV_32F, 1, 0) / 255, cv2.Sobel(height, cv2.CV_32F, 0, 1) / 255
    n = np.dstack([-gx, -gy, np.ones_like(gx)])
    n /= np.linalg.norm(n, axis=2, keepdims=True)
    return ((n * 0.5 + 0.5) * 255).astype(np.uint8)


@pytest.fixture()
def synthetic(tmp_path):
    """A package-like folder of candidates, what each must become, and a
    reference image to exclude."""
    src = tmp_path / "pkg"
    expect = {}
    big = _photo(1, (1600, 1000))
    expect[_save(src / "textures/big_rock.png", big)] = "indexed"
    # the same picture smaller and recompressed: a near-duplicate (the larger is kept)
    small_copy = cv2.resize(big, (800, 500), interpolation=cv2.INTER_AREA)
    expect[_save(src / "textures/big_rock_copy.jpg", small_copy)] = "duplicate"
    expect[_save(src / "textures/bark.tga", _photo(2))] = "indexed"           # TGA: Pillow
    expect[_save(src / "textures/grass.jpg", _photo(3))] = "indexed"
    flat = np.full((500, 600, 3), 120, np.uint8) + \
        np.linspace(0, 12, 600, dtype=np.float32).astype(np.uint8)[None, :, None]
    expect[_save(src / "textures/flat.png", flat)] = "low texture"
    expect[_save(src / "textures/rock_norm.png", _photo(4))] = "map name"
    expect[_save(src / "textures/rock_gloss.tga", _photo(5))] = "map name"
    expect[_save(src / "textures/pebbles.png", _normal_map(6))] = "normal map (colours)"
    expect[_save(src / "ui/menu_back.png", _photo(7))] = "ui/art name"
    expect[_save(src / "textures/tiny.png", _photo(8, (200, 150)))] = "small"
    cells = np.random.default_rng(14).integers(40, 220, (30, 40, 3)).astype(np.uint8)
    art = cv2.resize(cells, (640, 480), interpolation=cv2.INTER_NEAREST)   # flat colour tiles
    for i in range(6):
        cv2.putText(art, "LEVEL 0%d" % i, (20, 60 + 70 * i), cv2.FONT_HERSHEY_SIMPLEX, 1.5,
                    (255, 255, 255), 3)
    expect[_save(src / "textures/poster.png", art)] = "flat artwork"
    alpha = np.zeros((480, 640), np.uint8)
    alpha[100:200, 100:300] = 255
    sprite = np.zeros((480, 640, 3), np.uint8)
    sprite[100:200, 100:300] = _photo(9, (200, 100))
    expect[_save(src / "textures/leaf_card.png", sprite, alpha)] = "transparent"
    stars = np.zeros((600, 800, 3), np.uint8)
    rng = np.random.default_rng(13)
    stars[rng.integers(0, 600, 3000), rng.integers(0, 800, 3000)] = 255
    expect[_save(src / "nebulae/star_field.png", cv2.GaussianBlur(stars, (3, 3), 0))] = "dark"
    oxford_like = _photo(10, (800, 640))
    expect[_save(src / "textures/wall.jpg", cv2.resize(oxford_like, (1000, 800)))] = "excluded"
    # a .pk3 (zip) holding a texture and a normal map
    pk3 = src / "data.pk3"
    with zipfile.ZipFile(pk3, "w") as archive:
        for name, rgb in (("textures/metal/plate.tga", _photo(11)),
                          ("textures/metal/plate_n.tga", _normal_map(12))):
            buffer = __import__("io").BytesIO()
            Image.fromarray(rgb).save(buffer, format="TGA")
            archive.writestr(name, buffer.getvalue())
    expect[f"{pk3}!textures/metal/plate.tga"] = "indexed"
    expect[f"{pk3}!textures/metal/plate_n.tga"] = "map name"
    oxford = tmp_path / "oxford" / "seq"
    _save(oxford / "img1.png", oxford_like)
    return src, {str(k): v for k, v in expect.items()}, tmp_path / "oxford"


def _source(src: Path) -> ix.Source:
    files = [str(p) for p in sorted(src.rglob("*")) if p.is_file()]
    return ix.Source("synthetic-data", files, "1.0", "CC0-1.0", str(src / "copyright"))


def _refs(oxford: Path) -> ix.HashSet:
    return ix.exclusion_hashes((str(p), ix.read_image_file(p)) for p in oxford.rglob("*.png"))


def _candidates(index: Path) -> dict:
    return {json.loads(line)["key"]: json.loads(line) for line in
            (index / "candidates.jsonl").read_text().splitlines()}


def test_filters_dedup_exclusion_and_manifest(synthetic, tmp_path):
    src, expect, oxford = synthetic
    index = tmp_path / "index"
    report = ix.build_index(index, [_source(src)], _refs(oxford), log=None)
    outcome = {key: rec["status"] for key, rec in _candidates(index).items()}
    assert outcome == expect
    stages = report.stages["synthetic-data"]
    assert stages["candidates"] == len(expect)
    assert stages["unique"] == report.added["synthetic-data"] == 4
    # the near-duplicate is recorded as a copy of the larger picture, which the index keeps
    dup = _candidates(index)[str(src / "textures/big_rock_copy.jpg")]
    entries = ix.load_manifest(index)
    by_path = {(e["path"], e["member"]): e for e in entries}
    big = by_path[(str(src / "textures/big_rock.png"), None)]
    assert dup["of"] == big["id"] and dup["distance"] <= ix.DUPLICATE_BITS
    # the manifest: source, licence, path (+ archive member), hash; the cached copy downscaled
    assert set(by_path) == {(str(src / "textures/big_rock.png"), None),
                            (str(src / "textures/bark.tga"), None),
                            (str(src / "textures/grass.jpg"), None),
                            (str(src / "data.pk3"), "textures/metal/plate.tga")}
    for entry in entries:
        assert entry["package"] == "synthetic-data" and entry["licence"] == "CC0-1.0"
        assert len(entry["phash"]) == 16
        cached = cv2.imread(str(index / entry["cached"]))
        assert cached is not None and max(cached.shape[:2]) <= MAX_SIDE
        assert (entry["cached_width"], entry["cached_height"]) == (cached.shape[1], cached.shape[0])
    assert (big["width"], big["height"], big["cached_width"], big["cached_height"]) == \
        (1600, 1000, 1200, 750)
    summary = json.loads((index / "summary.json").read_text())
    assert summary["images"] == 4
    assert summary["sources"]["synthetic-data"]["stages"]["unique"] == 4
    assert summary["sources"]["synthetic-data"]["dropped"]["map name"] == 3


def test_second_run_only_adds_what_is_new(synthetic, tmp_path):
    src, _, oxford = synthetic
    index = tmp_path / "index"
    ix.build_index(index, [_source(src)], _refs(oxford), log=None)
    manifest = (index / "manifest.jsonl").read_text()
    again = ix.build_index(index, [_source(src)], _refs(oxford), log=None)
    assert again.decoded_now == 0 and sum(again.added.values()) == 0
    assert (index / "manifest.jsonl").read_text() == manifest
    assert again.stages["synthetic-data"]["unique"] == 4      # the counts still cover everything
    _save(src / "textures/moss.png", _photo(20))               # one new picture
    _save(src / "textures/moss_again.jpg", _photo(20))         # and a copy of it
    third = ix.build_index(index, [_source(src)], _refs(oxford), log=None)
    assert third.decoded_now == 2 and third.added["synthetic-data"] == 1
    assert len(ix.load_manifest(index)) == 5
    # a deleted cached copy is written again
    lost = ix.load_manifest(index)[0]
    (index / lost["cached"]).unlink()
    fifth = ix.build_index(index, [_source(src)], _refs(oxford), log=None)
    assert fifth.decoded_now == 1 and (index / lost["cached"]).is_file()
    assert len(ix.load_manifest(index)) == 5
    # a file gone from its package leaves the index (its cached copy too)
    gone = next(e for e in ix.load_manifest(index) if e["path"].endswith("moss.png"))
    (src / "textures/moss.png").unlink()
    sixth = ix.build_index(index, [_source(src)], _refs(oxford), log=None)
    assert sixth.removed["synthetic-data"] == 1 and not (index / gone["cached"]).exists()
    # and its duplicate, examined again, takes its place
    assert sixth.decoded_now == 1 and sixth.added["synthetic-data"] == 1
    assert [e["path"] for e in ix.load_manifest(index) if "moss" in e["path"]] == \
        [str(src / "textures/moss_again.jpg")]
    # a changed file is examined again
    _save(src / "textures/grass.jpg", np.full((480, 640, 3), 90, np.uint8))
    fourth = ix.build_index(index, [_source(src)], _refs(oxford), log=None)
    assert fourth.decoded_now == 1
    assert _candidates(index)[str(src / "textures/grass.jpg")]["status"] == "low texture"


def test_a_new_exclusion_removes_an_indexed_image(synthetic, tmp_path):
    src, _, oxford = synthetic
    index = tmp_path / "index"
    ix.build_index(index, [_source(src)], _refs(oxford), log=None)
    entry = next(e for e in ix.load_manifest(index) if e["path"].endswith("bark.tga"))
    # bark.tga becomes a validation picture: it must leave the index, cached copy and all
    _save(oxford / "held" / "bark_validation.png", cv2.resize(_photo(2), (500, 375)))
    report = ix.build_index(index, [_source(src)], _refs(oxford), log=None)
    assert report.removed["synthetic-data"] == 1
    assert entry["id"] not in {e["id"] for e in ix.load_manifest(index)}
    assert not (index / entry["cached"]).exists()
    assert _candidates(index)[str(src / "textures/bark.tga")]["status"] == "excluded"


def test_changed_rules_examine_everything_again(synthetic, tmp_path, monkeypatch):
    src, expect, oxford = synthetic
    index = tmp_path / "index"
    ix.build_index(index, [_source(src)], _refs(oxford), log=None)
    cached = {e["id"]: index / e["cached"] for e in ix.load_manifest(index)}
    monkeypatch.setattr(ix, "RULES_VERSION", ix.RULES_VERSION + 1)
    monkeypatch.setattr(ix, "MIN_TEXTURE", 1e9)          # a stricter filter: nothing passes
    report = ix.build_index(index, [_source(src)], _refs(oxford), log=None,
                            min_texture=ix.MIN_TEXTURE)
    assert report.decoded_now == len(expect)
    assert ix.load_manifest(index) == []
    assert not any(path.exists() for path in cached.values())
    assert json.loads((index / "rules.json").read_text())["version"] == ix.RULES_VERSION
    # so does another minimum size
    again = ix.build_index(index, [_source(src)], _refs(oxford), log=None, min_side=100,
                           min_texture=ix.MIN_TEXTURE)
    assert again.decoded_now == len(expect)
    assert json.loads((index / "summary.json").read_text())["filters"]["min_side"] == 100


def test_a_killed_run_resumes(synthetic, tmp_path):
    src, expect, oxford = synthetic
    index = tmp_path / "index"
    ix.build_index(index, [_source(src)], _refs(oxford), log=None, limit_per_source=5)
    with open(index / "candidates.jsonl", "a") as f:
        f.write('{"key": "cut sho')                       # a line a kill left half-written
    ix.build_index(index, [_source(src)], _refs(oxford), log=None, deadline=0.0)  # stops at once
    report = ix.build_index(index, [_source(src)], _refs(oxford), log=None)
    assert report.decoded_now == len(expect) - 5
    assert {k: r["status"] for k, r in _candidates(index).items()} == expect


def test_phash_is_stable_under_scale_and_far_between_pictures():
    a = _photo(30, (900, 600))
    a_small = cv2.resize(a, (450, 300), interpolation=cv2.INTER_AREA)
    b = _photo(31, (900, 600))
    assert ix.hamming(np.array([ix.phash(a)], np.uint64), ix.phash(a_small))[0] <= 4
    assert ix.hamming(np.array([ix.phash(a)], np.uint64), ix.phash(b))[0] > 16


def test_fine_hash_tells_apart_textures_of_one_layout():
    """Two different stochastic textures under the same baked lighting share
    the 64-bit hash; the fine hash parts them, and still joins a recoloured,
    downscaled copy."""
    layout = cv2.resize(np.random.default_rng(0).uniform(0.3, 1, (6, 6)).astype(np.float32),
                        (512, 512), interpolation=cv2.INTER_CUBIC)

    def texture(seed):
        noise = cv2.GaussianBlur(np.random.default_rng(seed).uniform(0, 1, (512, 512))
                                 .astype(np.float32), (0, 0), 3)
        grey = np.clip(layout * (1 + 0.1 * (noise - noise.mean()) / noise.std()), 0, 1)
        return (np.repeat(grey[..., None], 3, axis=2) * 255).astype(np.uint8)

    a, b = texture(1), texture(2)
    copy = cv2.resize(a, (300, 300), interpolation=cv2.INTER_AREA)
    copy = (copy * np.array([1.0, 0.8, 0.6])).astype(np.uint8)       # recoloured
    refs = ix.HashSet()
    refs.add(ix.phash(a), "a", ix.fine_hash(a))
    assert ix.hamming(np.array([ix.phash(a)], np.uint64), ix.phash(b))[0] <= ix.DUPLICATE_BITS
    assert refs.duplicate(ix.phash(b), ix.fine_hash(b), ix.DUPLICATE_BITS,
                          ix.FINE_DUPLICATE_BITS) is None
    found = refs.duplicate(ix.phash(copy), ix.fine_hash(copy), ix.DUPLICATE_BITS,
                           ix.FINE_DUPLICATE_BITS)
    assert found is not None and found[2] == "a"


def test_default_exclusions_cover_oxford_opencv_copies_and_held_out(tmp_path):
    oxford = tmp_path / "oxford-affine" / "graf"
    _save(oxford / "img1.png", _photo(40))
    opencv = tmp_path / "opencv"
    _save(opencv / "graf1.png", _photo(41))
    _save(opencv / "aloeL.jpg", _photo(42))
    _save(opencv / "fruits.jpg", _photo(43))                  # a training photo: not a reference
    wallpapers = tmp_path / "wallpapers"
    _save(wallpapers / "Dune" / "contents" / "images" / "1920x1080.jpg", _photo(44))  # HELD_OUT
    _save(wallpapers / "Dune" / "contents" / "images" / "640x480.jpg", _photo(44, (640, 480)))
    _save(wallpapers / "Other" / "contents" / "images" / "1920x1080.jpg", _photo(45))
    refs, counts = ix.default_exclusions(tmp_path / "oxford-affine", {}, opencv_dir=opencv,
                                         image_roots=(wallpapers,))
    assert counts["oxford"] == 1 and counts["held-out validation pictures (files)"] == 2
    assert counts["opencv-doc oxford copies and real-pair validation images"] == 2
    assert len(refs) == 5
    assert refs.nearest(ix.phash(cv2.resize(_photo(44), (700, 500))))[0] <= ix.EXCLUDE_BITS
    assert refs.nearest(ix.phash(_photo(43)))[0] > ix.EXCLUDE_BITS


def test_licence_from_a_machine_readable_copyright(tmp_path):
    copyright_file = tmp_path / "copyright"
    copyright_file.write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: someone\nLicense: CC-BY-SA-3.0\n\n"
        "Files: fonts/*\nCopyright: a foundry\nLicense: OFL-1.1\n\n"
        "Files: debian/*\nCopyright: a packager\nLicense: GPL-2+\n\n"
        "License: CC-BY-SA-3.0\n long text\n")
    assert ix.licence_of(copyright_file) == "CC-BY-SA-3.0"
    plain = tmp_path / "plain"
    plain.write_text("These images are released under the Creative Commons "
                     "Attribution-ShareAlike 3.0 licence.\n")
    assert ix.licence_of(plain) == "CC-BY-SA"
    assert ix.licence_of(tmp_path / "missing").startswith("unknown")


@pytest.mark.parametrize("name, reason", [
    ("textures/rock_n.tga", "map name"), ("textures/rock_nm.png", "map name"),
    ("textures/rock_s.jpg", "map name"), ("textures/rock_spec.png", "map name"),
    ("art/textures/terrain/grass_spec.png.cached.dds", "map name"),
    ("textures/wall_glow.tga", "map name"), ("textures/normalmap_2.png", "map name"),
    ("textures/lava_luma.jpg", "map name"), ("gfx/menu/background.tga", "ui/art name"),
    ("art/textures/ui/session/icon.dds", "ui/art name"), ("Ubuntu-logo.png", "ui/art name"),
    ("gfx/damage/blood.tga", "ui/art name"),
    ("/usr/share/games/naev/dat/gfx/planet/exterior/city.webp", None),
    ("maps/xerxes/h.png", "map name"), ("textures/floor_metal.jpg", None),
    ("textures/stone_rough.png", None),
    ("maps/desertfactory/lm_0001.tga", "map name"),
    ("art/textures/skins/structural/ao/gaul_house_a.png.cached.dds", "map name"),
    ("textures/rock.tga", None), ("textures/sand_dunes.jpg", None),
    ("textures/abnormal_rock.png", None),
])
def test_map_and_ui_names(name, reason):
    assert ix.map_name_reason(name) == reason


def test_the_data_script_installs_the_indexed_packages():
    script = (Path(__file__).resolve().parents[3] / "scripts" / "get_training_data.sh").read_text()
    listed = []
    for array in ("pkgs=(", "scale_packages=("):
        listed += script.split("\n" + array, 1)[1].split(")", 1)[0].split()
    assert sorted(listed) == sorted(ix.SOURCE_PACKAGES)


def test_summary_as_markdown(synthetic, tmp_path):
    src, expect, oxford = synthetic
    index = tmp_path / "index"
    ix.build_index(index, [_source(src)], _refs(oxford), log=None)
    table = ix.summary_markdown(json.loads((index / "summary.json").read_text()))
    rows = table.splitlines()
    assert rows[0].startswith("| package | licence | candidates |")
    assert rows[2].startswith(f"| synthetic-data | CC0-1.0 | {len(expect)} |")
    assert rows[2].endswith("| 4 |")
    assert rows[-1].endswith("**4** |")
