"""A held-out validation benchmark in the Oxford layout, for choosing settings
without looking at the benchmark.

Inference settings (detection threshold, pyramid levels) and checkpoints are
chosen here, never on `oxford-affine`. The set is made from images training
never sees: the photographs training holds out (`training.data.split_holdout`,
the same split the trainer validates on) that are large and textured enough
and are not near-duplicates of a training image (the next frame of a training
frame, one picture under two names: thumbnail correlation >= NEAR_DUPLICATE),
and frames of opencv-doc's videos (training reads still images only).

Each source image gives one sequence of one nuisance the Oxford sequences
test, `img1.png` .. `img6.png` with `H1to2p` .. `H1to6p` exactly like
`oxford-affine/<seq>/`, so `evaluate --data DIR` runs on it unchanged:

* zoom:      scale 0.85 .. 0.36 with rotation growing to about 90 degrees (boat-like)
* viewpoint: one side of the view receding more at each level, its corners
             moving up to 30 % of the side (graf-like)
* blur:      Gaussian defocus sigma 1 .. 4.2 px (bikes-like)
* light:     exposure falling to 18 % with gamma (leuven-like)

Level k of a sequence is harder than level k-1, as in Oxford. The views are
800 x 640 (Oxford's size), low-pass filtered before shrinking (as a camera
zooming out would see them, not aliased); content outside the source image
is black. The set is deterministic for a seed; writing it replaces the
sequence folders a previous run left in the same place.
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import cv2
import numpy as np

from ..training.data import find_training_images, load_image_bank, split_holdout

VIDEO_DIR = Path("/usr/share/doc/opencv-doc/examples/data")
VIDEO_FRAMES = {"vtest.avi": (0, 500), "Megamind.avi": (0, 70, 140, 200, 260)}
MIN_SOURCE_SIDE = 480
MIN_TEXTURE = 30.0              # variance of the Laplacian: smooth artwork says little
NEAR_DUPLICATE = 0.9            # thumbnail correlation above which two images are one picture
THUMBNAIL = (32, 24)

KINDS = ("zoom", "viewpoint", "blur", "light")
VIEW_SIZE = (800, 640)          # width, height
SOURCE_MAX_SIDE = 1600          # photographs are loaded at up to this side
LEVELS = 5                      # img2 .. img6


def _similarity(centre_src, centre_view, scale: float, angle_deg: float) -> np.ndarray:
    """3x3 map from source pixels to view pixels: rotate/scale about the
    source point `centre_src`, which lands on `centre_view`."""
    a = math.radians(angle_deg)
    c, s = scale * math.cos(a), scale * math.sin(a)
    to_origin = np.array([[1, 0, -centre_src[0]], [0, 1, -centre_src[1]], [0, 0, 1]], np.float64)
    rotate = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float64)
    to_view = np.array([[1, 0, centre_view[0]], [0, 1, centre_view[1]], [0, 0, 1]], np.float64)
    return to_view @ rotate @ to_origin


def _perspective(amount: float, side: int, rng: np.random.Generator) -> np.ndarray:
    """A view-space homography that foreshortens `side` (0 right, 1 left, 2 top,
    3 bottom) by moving its corners `amount` of the view side towards each
    other (a camera turning about a vertical or horizontal axis)."""
    w, h = VIEW_SIZE
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    moved = corners.copy()
    d = amount * np.array([w, h], np.float32)
    jitter = rng.uniform(-0.02, 0.02, (4, 2)).astype(np.float32) * np.array([w, h], np.float32)
    if side == 0:      # right side recedes
        moved[1] += [-0.3 * d[0], d[1]]
        moved[2] += [-0.3 * d[0], -d[1]]
    elif side == 1:    # left side recedes
        moved[0] += [0.3 * d[0], d[1]]
        moved[3] += [0.3 * d[0], -d[1]]
    elif side == 2:    # top recedes
        moved[0] += [d[0], 0.3 * d[1]]
        moved[1] += [-d[0], 0.3 * d[1]]
    else:              # bottom recedes
        moved[3] += [d[0], -0.3 * d[1]]
        moved[2] += [-d[0], -0.3 * d[1]]
    return cv2.getPerspectiveTransform(corners, moved + jitter).astype(np.float64)


def _view_homographies(kind: str, photo_shape, rng: np.random.Generator) -> list[np.ndarray]:
    """Source-to-view homographies of img1 .. img6 for one sequence."""
    h, w = photo_shape[:2]
    centre = (w / 2 + rng.uniform(-0.1, 0.1) * w, h / 2 + rng.uniform(-0.1, 0.1) * h)
    view_centre = (VIEW_SIZE[0] / 2, VIEW_SIZE[1] / 2)
    # img1 shows the photo at a scale where it just covers the view
    base = max(VIEW_SIZE[0] / w, VIEW_SIZE[1] / h) * 1.05
    first = _similarity(centre, view_centre, base, 0.0)
    views = [first]
    sign = rng.choice([-1.0, 1.0])
    side = int(rng.integers(4))                 # the side that recedes, for the whole sequence
    for level in range(1, LEVELS + 1):
        if kind == "zoom":
            scale = (0.85, 0.7, 0.55, 0.45, 0.36)[level - 1]
            angle = sign * (18.0 * level + rng.uniform(-4, 4))      # 18 .. 90 degrees
            views.append(_similarity(centre, view_centre, base * scale, angle))
        elif kind == "viewpoint":
            angle = rng.uniform(-15, 15)
            similar = _similarity(centre, view_centre, base * rng.uniform(0.85, 1.0), angle)
            views.append(_perspective(0.06 * level, side, rng) @ similar)
        else:   # blur, light: the camera barely moves
            shift = np.array([[1, 0, rng.uniform(-8, 8)], [0, 1, rng.uniform(-8, 8)], [0, 0, 1]])
            views.append(shift @ _similarity(centre, view_centre, base * rng.uniform(0.97, 1.03),
                                             rng.uniform(-2, 2)))
    return views


def _photometric(image: np.ndarray, kind: str, level: int, rng: np.random.Generator) -> np.ndarray:
    """The nuisance of `kind` at `level` (0 = img1: none), plus mild sensor noise."""
    img = image.astype(np.float32) / 255.0
    if kind == "blur" and level:
        img = cv2.GaussianBlur(img, (0, 0), (1.0, 1.8, 2.6, 3.4, 4.2)[level - 1])
    if kind == "light" and level:
        img = np.clip(img * (0.7, 0.5, 0.35, 0.25, 0.18)[level - 1], 0, 1) ** rng.uniform(0.9, 1.1)
    img = img + rng.normal(0, 0.006, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255.0 + 0.5).astype(np.uint8)


def _low_pass(image: np.ndarray, to_view: np.ndarray) -> np.ndarray:
    """The source blurred for a view that shrinks it (scale s < 1 at the view
    centre): Gaussian sigma 0.5 * sqrt(1/s^2 - 1) source pixels, so the warp
    does not alias (warpPerspective has no area interpolation)."""
    cx, cy = VIEW_SIZE[0] / 2, VIEW_SIZE[1] / 2
    inverse = np.linalg.inv(to_view)
    points = np.array([[[cx, cy], [cx + 1, cy], [cx, cy + 1]]], np.float64)
    src = cv2.perspectiveTransform(points, inverse)[0]
    stretch = 0.5 * (np.linalg.norm(src[1] - src[0]) + np.linalg.norm(src[2] - src[0]))
    scale = 1.0 / max(stretch, 1e-6)          # view pixels per source pixel
    if scale >= 1.0:
        return image
    return cv2.GaussianBlur(image, (0, 0), 0.5 * math.sqrt(1.0 / scale ** 2 - 1.0))


def _texture(rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the image seen at the view's width, in its
    central 80 % (what img1 shows)."""
    h, w = rgb.shape[:2]
    grey = cv2.cvtColor(cv2.resize(rgb, (VIEW_SIZE[0], max(1, round(h * VIEW_SIZE[0] / w))),
                                   interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    gh, gw = grey.shape
    centre = grey[gh // 10: gh - gh // 10, gw // 10: gw - gw // 10]
    return float(cv2.Laplacian(centre, cv2.CV_32F).var())


def _thumbnail(path: Path) -> np.ndarray | None:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        return None
    small = cv2.resize(image, THUMBNAIL, interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    small -= small.mean()
    return small / (np.linalg.norm(small) + 1e-6)


def unseen_held_out(paths: list[Path]) -> list[Path]:
    """The held-out paths that are no near-duplicate of a training path."""
    training, held_out = split_holdout(paths)
    thumbs = [t for t in (_thumbnail(p) for p in training) if t is not None]
    seen = np.stack(thumbs) if thumbs else np.zeros((0, THUMBNAIL[0] * THUMBNAIL[1]), np.float32)
    unseen = []
    for path in held_out:
        thumb = _thumbnail(path)
        if thumb is None:
            continue
        if len(seen) and float((seen @ thumb).max()) >= NEAR_DUPLICATE:
            continue
        unseen.append(path)
    return unseen


def validation_sources(image_roots=None, video_dir: Path = VIDEO_DIR) -> list[np.ndarray]:
    """RGB images no training run sees: held-out photographs (large and
    textured enough, no near-duplicate of a training image), then the chosen
    video frames."""
    paths = find_training_images(image_roots) if image_roots else find_training_images()
    try:
        photos = load_image_bank(unseen_held_out(paths), max_side=SOURCE_MAX_SIDE)
    except FileNotFoundError:    # no photographs installed: video frames only
        photos = []
    sources = [image for image in photos if min(image.shape[:2]) >= MIN_SOURCE_SIDE]
    for name, indices in VIDEO_FRAMES.items():
        capture = cv2.VideoCapture(str(Path(video_dir) / name))
        for index in indices:
            capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, frame = capture.read()
            if ok:
                sources.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        capture.release()
    return [image for image in sources if _texture(image) >= MIN_TEXTURE]


def make_validation_set(out: str | Path, photos_per_kind: int = 4, seed: int = 0,
                        image_roots=None, video_dir: Path = VIDEO_DIR) -> list[Path]:
    """Write the held-out validation sequences under `out`; returns their folders."""
    bank = validation_sources(image_roots, video_dir)
    if not bank:
        raise FileNotFoundError("no held-out images for the validation set; run "
                                "scripts/get_training_data.sh (photographs and opencv-doc)")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(bank))       # which image serves which nuisance
    out = Path(out)
    for kind in KINDS:                       # sequences of an earlier run would mix in
        for stale in out.glob(f"{kind}-*"):
            if stale.is_dir():
                shutil.rmtree(stale)
    folders = []
    for k, kind in enumerate(KINDS):
        for i in range(photos_per_kind):
            photo = bank[order[(k * photos_per_kind + i) % len(bank)]]
            bgr = cv2.cvtColor(photo, cv2.COLOR_RGB2BGR)
            views = _view_homographies(kind, photo.shape, rng)
            folder = out / f"{kind}-{i + 1}"
            folder.mkdir(parents=True, exist_ok=True)
            for level, to_view in enumerate(views):
                view = cv2.warpPerspective(_low_pass(bgr, to_view), to_view, VIEW_SIZE,
                                           flags=cv2.INTER_LINEAR,
                                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                cv2.imwrite(str(folder / f"img{level + 1}.png"), _photometric(view, kind, level, rng))
                if level:
                    h_1k = to_view @ np.linalg.inv(views[0])
                    np.savetxt(folder / f"H1to{level + 1}p", h_1k / h_1k[2, 2], fmt="%.10g")
            folders.append(folder)
    return folders
