"""Training images from the image index (`image_index.py`), streamed from disk.

The trainer's `--image-index [DIR]` reads the index's cached JPEGs instead of
the ~120 photos of `data.find_training_images`; `--max-images N` takes a
seeded subset of them (issue 19's data-scaling runs):

* **which images**: every manifest entry is ranked by
  sha256(f"{image_seed}:{id}") and the first N are taken. The ranking
  depends on the ids only (not on the manifest's order, nor on numpy), so the
  same index and seed always give the same N images, the first 1,000 of a
  seed are among its first 5,000, and an image added to the index later
  takes its own place in the ranking without reshuffling the others.
* **held out**: the index excludes the validation pictures by perceptual
  hash; an entry whose source file or archive member has the name of a
  held-out picture (`data.image_key` in `TrainConfig.held_out`) is dropped
  as well, so the trainer's own validation pairs never show a training image.
* **pinned**: the chosen images are hard-linked (copied across file
  systems) into `<run_dir>/images/<id>.jpg` and their manifest entries are
  written to `<run_dir>/data.json` when the run begins. A resumed run reads
  the images its data.json names and never the manifest again, so the index
  may grow, be rebuilt or lose images while a run trains.
* **streamed**: `StreamingImageBank` decodes an image when a pair asks for it
  and keeps at most `max_decoded` of them (least recently used out); a
  1200-px JPEG decodes in about 10 ms against a training step of seconds.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from .data import image_key

# what data.json keeps of a manifest entry (enough to find the image again and
# to credit it)
ENTRY_FIELDS = ("id", "package", "version", "licence", "copyright", "path", "member", "phash",
                "cached", "cached_width", "cached_height")


def rank_key(image_id: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{image_id}".encode()).hexdigest()


def is_held_out(entry: dict, held_out) -> bool:
    """The entry's source file (or archive member) goes by a held-out picture's name."""
    names = set(held_out)
    keys = {image_key(Path(entry["path"]))}
    if entry.get("member"):
        keys.add(image_key(Path(entry["member"])))
    return bool(keys & names)


def select_images(entries: list[dict], max_images: int = 0, seed: int = 0,
                  held_out=()) -> tuple[list[dict], int]:
    """(the chosen entries in ranking order, how many were dropped as held out):
    the first `max_images` (0: all) of the entries ranked by `rank_key`."""
    kept = [e for e in entries if not is_held_out(e, held_out)]
    dropped = len(entries) - len(kept)
    ids = [e["id"] for e in kept]
    if len(set(ids)) != len(ids):
        raise ValueError("the image index lists an id twice")
    kept.sort(key=lambda e: rank_key(e["id"], seed))
    if max_images:
        if max_images > len(kept):
            raise ValueError(f"--max-images {max_images}: the index has only {len(kept)} "
                             "training images")
        kept = kept[:max_images]
    return kept, dropped


def run_image_path(run_dir: Path, image_id: str) -> Path:
    return Path(run_dir) / "images" / f"{image_id}.jpg"


def pin_images(entries: list[dict], index_dir: Path, run_dir: Path) -> None:
    """Hard-link (or copy) each entry's cached JPEG into the run directory;
    images already there are kept."""
    for entry in entries:
        target = run_image_path(run_dir, entry["id"])
        if target.exists():
            continue
        source = Path(index_dir) / entry["cached"]
        if not source.exists():
            raise FileNotFoundError(f"{source}: the index lost this cached image; rerun "
                                    "scripts/get_training_data.sh or use a new --run-dir")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(source, tmp)
        except OSError:                 # another file system
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)


class StreamingImageBank(Sequence):
    """RGB uint8 images decoded from files when indexed, at most `max_decoded`
    held at a time (least recently used out): a drop-in for the list
    `data.load_image_bank` returns (`data.make_pair` only indexes its bank)."""

    def __init__(self, paths: list[Path], max_decoded: int = 64):
        if max_decoded < 1:
            raise ValueError("max_decoded must be at least 1")
        self.paths = [Path(p) for p in paths]
        self.max_decoded = max_decoded
        self.decodes = 0                       # how many times a file was decoded
        self._held: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def held(self) -> int:
        """Decoded images held now."""
        return len(self._held)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        if i in self._held:
            self._held.move_to_end(i)
            return self._held[i]
        bgr = cv2.imread(str(self.paths[i]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"{self.paths[i]}: training image missing or unreadable")
        self.decodes += 1
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        self._held[i] = rgb
        while len(self._held) > self.max_decoded:
            self._held.popitem(last=False)
        return rgb


def index_training_data(run_dir: Path, index_dir: Path, max_images: int, seed: int, held_out,
                        saved: dict | None) -> tuple[list[dict], dict]:
    """(entries, data.json's index fields) of a run: those `saved` (the run's
    data.json) records when it resumes, else a fresh selection from the
    index's manifest; the images are pinned into the run directory either way."""
    if saved is not None and "training_images" in saved:
        recorded = saved.get("image_index", {})
        asked = {"max_images": max_images, "image_seed": seed}
        for key, value in asked.items():
            if recorded.get(key) != value:
                raise ValueError(f"{run_dir} began with {key} {recorded.get(key)}, not {value}; "
                                 "use a new --run-dir")
        entries = saved["training_images"]
        pin_images([e for e in entries if not run_image_path(run_dir, e["id"]).exists()],
                   Path(recorded.get("dir", index_dir)), run_dir)
        return entries, recorded
    if saved is not None:
        raise ValueError(f"{run_dir} began on the trainer's own pictures, not on an image "
                         "index; use a new --run-dir")
    from .image_index import load_manifest
    manifest = load_manifest(index_dir)
    if not manifest:
        raise FileNotFoundError(f"{index_dir}: no image index (manifest.jsonl); run "
                                "scripts/get_training_data.sh")
    chosen, dropped = select_images(manifest, max_images, seed, held_out)
    entries = [{k: e.get(k) for k in ENTRY_FIELDS} for e in chosen]
    pin_images(entries, index_dir, run_dir)
    info = {"dir": str(index_dir), "index_images": len(manifest), "dropped_held_out": dropped,
            "max_images": max_images, "image_seed": seed,
            "selection": "manifest entries ranked by sha256(f'{image_seed}:{id}'), first "
                         "max_images (0: all); held-out names dropped",
            "pinned": "images/<id>.jpg in the run directory"}
    return entries, info
