"""An on-disk index of training images at scale: tens of thousands of
pictures from Debian packages (game texture packs, panoramas, map imagery,
wallpapers), filtered the way the trainer filters, de-duplicated by a
perceptual hash, with the pictures the package validates and reports on
excluded by hash, and a manifest that says where each came from.

`build_index(index_dir, sources, exclusions)` walks the sources (a package's
installed files outside documentation and icon folders, and the members of
the zip archives it ships: `.pk3`, `.zip`, `.wz`, `.sh3f`), and for each
candidate image, in this order:

1. name      drops names of non-photographic maps and art (normal, bump,
             height, gloss, specular, glow, luma, ambient occlusion, masks;
             UI, HUD, icons, fonts, logos, cursors, portraits): `map_name_reason`
2. decode    opens it with Pillow (TGA, DDS, SGI, BMP, PNG, JPEG...; OpenCV
             reads no TGA); unreadable files are counted
3. size      shorter side >= INDEX_MIN_SIDE (256: the training view) after
             the downscale to MAX_SIDE (`training.data`), read from the header
             before anything is decoded
4. content   mostly transparent over a uniform fill (cut-outs, sprites,
             decals), a tangent-space normal map by its colours, too little
             texture (variance of the Laplacian < MIN_TEXTURE, the trainer's
             bound), mostly near-black (star fields: MAX_DARK) and flat
             artwork (a large share of the pixels in exactly uniform 3x3
             blocks: logos, UI, cartoons, rendered text)
5. excluded  its perceptual hash within EXCLUDE_BITS of a reference that
             must never be trained on (Oxford, opencv-doc's copies of it,
             the held-out validation pictures, the validation video frames)
6. duplicate within DUPLICATE_BITS of an image already in the index and,
             confirmed by a finer 256-bit hash (16x16 frequencies of a 64x64
             thumbnail), within FINE_DUPLICATE_BITS of it: the 64-bit hash
             alone takes two different stochastic textures (two dirt or grass
             variants) with the same lighting layout for one

A candidate that passes is downscaled (long side <= MAX_SIDE, as the trainer
does) and written to `<index>/images/<id[:2]>/<id>.jpg` (JPEG quality 95,
4:4:4), and one line is appended to `<index>/manifest.jsonl`: id, source
package and version, licence (from /usr/share/doc/<package>/copyright),
path (and archive member), hash, sizes. Every candidate's outcome is
appended to `<index>/candidates.jsonl` keyed by path, member and a
fingerprint (size and mtime; the archive member's CRC), so a second run
decodes only what is new or changed and adds what passes; entries already
in the index stay, unless an exclusion reference now matches them or their
file is gone from its package (then they are removed, cached copy and all,
and their duplicates are examined again). Both files are append-only while a run works (it can be
killed and resumed) and are compacted at its end; `summary.json` holds the
counts per source after each filter.

The trainer reads it through `index_data` (`train --image-index`): a seeded
subset pinned into the run directory and streamed (`StreamingImageBank`).
"""
from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import re
import subprocess
import time
import zipfile
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from .data import EXCLUDED_PATTERNS, MAX_SIDE, downscaled

DEFAULT_INDEX_DIR = Path(os.environ.get("EDGEPOINT_TRAINING_INDEX",
                                        "/var/cache/edgepoint_ros/training_images"))

# The Debian packages indexed, in order: photographs first, so that a picture
# a wallpaper and a game both ship is recorded under the photo package.
PHOTO_PACKAGES = ("mate-backgrounds", "plasma-workspace-wallpapers", "ukui-wallpapers",
                  "gnome-backgrounds", "lomiri-wallpapers", "lomiri-wallpapers-16.04",
                  "lomiri-wallpapers-20.04", "sway-backgrounds", "desktop-base", "opencv-doc",
                  "stellarium-data", "marble-data", "marble-qt-data")
TEXTURE_PACKAGES = ("nexuiz-textures", "ufoai-textures", "openarena-081-textures",
                    "supertuxkart-data", "redeclipse-data", "flightgear-data-base", "0ad-data",
                    "colobot-common-textures", "torcs-data", "trigger-rally-data",
                    "flightgear-data-models", "flightgear-data-ai", "megaglest-data",
                    "freeorion-data", "scorched3d-data", "extremetuxracer-data",
                    "neverball-data", "warzone2100-data", "nexuiz-data", "ufoai-data",
                    "openarena-data", "openarena-085-data", "openarena-088-data",
                    "openarena-081-maps", "openarena-081-misc", "openarena-081-players",
                    "naev-data", "endless-sky-data", "blender-data", "lugaru-data",
                    "trackballs-data", "enlightenment-data", "sweethome3d-furniture",
                    "krita-data", "libirrlicht-doc", "mypaint-data", "bzflag-data",
                    "palapeli-data", "wesnoth-1.16-data", "widelands-data")
SOURCE_PACKAGES = PHOTO_PACKAGES + TEXTURE_PACKAGES
# Where in a package its pictures are, when not everywhere: opencv-doc's
# HTML documentation is screenshots and diagrams; its sample data are photos.
PACKAGE_ROOTS = {"opencv-doc": ("/usr/share/doc/opencv-doc/examples/data",),
                 "libirrlicht-doc": ("/usr/share/doc/libirrlicht-dev/media",)}

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tga", ".bmp", ".dds", ".webp", ".tif", ".tiff",
                    ".rgb", ".rgba", ".sgi", ".ppm", ".pgm")
ARCHIVE_EXTENSIONS = (".pk3", ".zip", ".wz", ".sh3f")  # zip archives (warzone2100, Sweet Home 3D)
# Folders of documentation and desktop art in any package (handbook
# screenshots, icons): not candidates, unless PACKAGE_ROOTS names them.
NOT_PICTURE_TREES = ("/usr/share/doc/", "/usr/share/help/", "/usr/share/icons/",
                     "/usr/share/pixmaps/", "/usr/share/man/", "/usr/share/locale/")
# Bump when a filter changes: an index built under other rules is examined
# again from the start (its cached copies that no longer qualify are deleted).
RULES_VERSION = 4
# Shorter side after the downscale, at least: the network's training view is
# 256 px and `data.make_pair` upscales an image below its 320-px source crop
# (by at most 1.25 at 256), so 256-px game textures still make whole views.
# The trainer's own pictures keep data.MIN_SIDE (360), so its runs replay.
INDEX_MIN_SIDE = 256
MIN_TEXTURE = 20.0        # variance of the Laplacian, as training.data.load_image_bank
MAX_FLAT_FRACTION = 0.5   # share of pixels in exactly uniform 3x3 blocks above which it is artwork
MAX_TRANSPARENT = 0.25    # share of pixels with alpha < 128 above which it is a cut-out
MAX_DARK = 0.5            # share of near-black pixels (grey < 24) above which crops are empty
                          # (star fields, night scenes: the trainer's crops would see nothing)
DUPLICATE_BITS = 8        # pHash Hamming distance (of 64) at or below which two images may be one
FINE_DUPLICATE_BITS = 12  # and fine-hash distance (of 255) at or below which they are
EXCLUDE_BITS = 12         # the same against the excluded references (wider: cheap to be safe)
CACHE_QUALITY = 95

# Non-photographic texture maps by name: a suffix (or a whole word) of the
# file stem. `_n`, `_s`, `_g` are the normal/specular/gloss suffixes of the
# Quake-family packs; `_nm`, `_norm`, `_spec` ... of the others.
_MAP_WORDS = ("n", "nm", "nrm", "norm", "normal", "normals", "normalmap", "local", "ddn",
              "bump", "bumpmap", "bmp", "h", "height", "heightmap", "hgt", "disp", "displace",
              "displacement", "parallax", "g", "gloss", "glossmap", "glossiness", "s", "spec",
              "specular", "specmap", "glow", "glowmap", "luma", "emit", "emission", "emissive",
              "illum", "lum", "ao", "occ", "occlusion", "ambientocclusion", "roughness",
              "metallic", "metalness", "orm", "rma", "mra", "mask", "alpha", "opacity",
              "reflect", "refl", "dudv", "pants", "shirt", "lightmap", "lm", "depth", "shadow",
              "cubemap_mask")
_MAP_SUFFIX = re.compile(r"(^|[_\-. ])(" + "|".join(sorted(_MAP_WORDS, key=len, reverse=True)) +
                         r")\d*$")
_MAP_WORD = re.compile(r"(^|[_\-. ])(normalmap|normal|normals|bumpmap|heightmap|gloss|specular|"
                       r"glowmap|lightmap|roughness|metallic|occlusion)([_\-. ]|\d|$)")
# Baked lightmaps and deluxe maps of Quake-family maps: `maps/<map>/lm_0001.tga`.
_LIGHTMAP = re.compile(r"^(lm|dm|lightmap|deluxemap)[_\-]?\d+$")
# UI and other art by a folder or name: interface pictures, icons, fonts, logos.
_ART_PARTS = {"ui", "gui", "hud", "icons", "icon", "fonts", "font", "cursors", "cursor",
              "menu", "menus", "logo", "logos", "portraits", "emblems", "splash", "crosshairs",
              "crosshair", "minimap", "minimaps", "flags", "particles", "particle",
              "sprites", "decals", "fonts-ttf", "help", "buttons", "widgets", "theme", "themes",
              "skins-ui", "loadingscreens", "levelshots-ui", "symbols", "overlays"}
# Folders of non-photographic maps: ambient occlusion, lightmaps, normals,
# elevation tiles (marble's srtm), masks.
_MAP_PARTS = {"ao", "lightmap", "lightmaps", "normals", "normalmaps", "srtm", "srtm2",
              "heightmaps", "heights", "masks"}
_ART_NAME = ("*logo*", "*icon*", "*button*", "*cursor*", "*font*", "*crosshair*", "*splash*",
             "*screenshot*", "*thumbnail*", "*preview*", "*_thumb*", "*banner*", "*text*")


def _stem(name: str) -> str:
    """The name without its image extensions (0ad: `grass_spec.png.cached.dds`)."""
    stem = name
    while True:
        base, dot, ext = stem.rpartition(".")
        if not dot or f".{ext}" not in IMAGE_EXTENSIONS + (".cached",):
            return stem
        stem = base


def map_name_reason(path: str) -> str | None:
    """Why a path names no usable picture (a texture map or UI/logo art), or None."""
    low = path.lower().replace("\\", "/")
    parts = low.split("/")
    stem = _stem(parts[-1])
    if _MAP_SUFFIX.search(stem) or _MAP_WORD.search(stem) or _LIGHTMAP.match(stem) \
            or any(part in _MAP_PARTS for part in parts[:-1]):
        return "map name"
    if any(part in _ART_PARTS for part in parts[:-1]):
        return "ui/art name"
    if parts[0] == "gfx" and len(parts) > 1:   # a Quake-family archive's gfx/: HUD, menus
        return "ui/art name"
    if any(fnmatch.fnmatch(parts[-1], pattern) for pattern in _ART_NAME):
        return "ui/art name"
    return None


# --------------------------------------------------------------- perceptual hash

def phash(image: np.ndarray) -> int:
    """64-bit DCT perceptual hash of an image (grey or RGB): the signs of the
    8x8 lowest frequencies of its 32x32 thumbnail against their median (DC
    left out). Invariant to scale, mild blur, recompression and colour."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:8, :8].ravel()
    bits = (low > np.median(low[1:])).astype(np.uint8)
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def fine_hash(image: np.ndarray) -> int:
    """255-bit DCT hash: the 16x16 lowest frequencies of a 64x64 grey
    thumbnail (DC left out) against their median. Tells apart pictures the
    64-bit hash confuses (stochastic textures with one layout), still the same
    for a picture downscaled, recompressed or recoloured."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey.astype(np.float32), (64, 64), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:16, :16].ravel()[1:]
    bits = np.concatenate([(low > np.median(low)).astype(np.uint8), [0]])
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def _words(h: int) -> np.ndarray:
    return np.array([(h >> (64 * k)) & 0xFFFFFFFFFFFFFFFF for k in range(4)], np.uint64)


def hamming(hashes: np.ndarray, h: int) -> np.ndarray:
    """Hamming distances between an array of uint64 hashes and one hash."""
    if len(hashes) == 0:
        return np.zeros(0, np.int64)
    return np.bitwise_count(hashes ^ np.uint64(h)).astype(np.int64)


class HashSet:
    """Hashes with names, searchable by Hamming distance; grows in place."""

    def __init__(self):
        self._hashes = np.zeros(1024, np.uint64)
        self._fine = np.zeros((1024, 4), np.uint64)
        self._has_fine = np.zeros(1024, bool)
        self.names: list[str] = []

    def __len__(self) -> int:
        return len(self.names)

    def add(self, h: int, name: str, fine: int | None = None) -> None:
        n = len(self.names)
        if n == len(self._hashes):
            self._hashes = np.concatenate([self._hashes, np.zeros_like(self._hashes)])
            self._fine = np.concatenate([self._fine, np.zeros_like(self._fine)])
            self._has_fine = np.concatenate([self._has_fine, np.zeros_like(self._has_fine)])
        self._hashes[n] = np.uint64(h)
        if fine is not None:
            self._fine[n] = _words(fine)
            self._has_fine[n] = True
        self.names.append(name)

    def duplicate(self, h: int, fine: int, bits: int, fine_bits: int) -> tuple[int, int, str] | None:
        """(distance, fine distance, name) of the nearest hash within `bits`
        whose fine hash is within `fine_bits` (one without a fine hash counts
        as 0), or None."""
        n = len(self.names)
        close = np.flatnonzero(hamming(self._hashes[:n], h) <= bits)
        if len(close) == 0:
            return None
        fine_d = np.bitwise_count(self._fine[close] ^ _words(fine)[None, :]).sum(axis=1)
        fine_d = np.where(self._has_fine[close], fine_d, 0)
        best = int(fine_d.argmin())
        if fine_d[best] > fine_bits:
            return None
        i = int(close[best])
        return int(hamming(self._hashes[i:i + 1], h)[0]), int(fine_d[best]), self.names[i]

    def nearest(self, h: int) -> tuple[int, str | None]:
        """(distance, name) of the nearest hash; (65, None) when empty."""
        d = hamming(self._hashes[:len(self.names)], h)
        if len(d) == 0:
            return 65, None
        i = int(d.argmin())
        return int(d[i]), self.names[i]


# --------------------------------------------------------------- decoding

def _pillow():
    from PIL import Image, ImageFile
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    Image.MAX_IMAGE_PIXELS = 400_000_000
    return Image


def open_image(data: bytes | str | Path):
    """A Pillow image (header read, pixels not yet decoded) of a file or bytes."""
    image_cls = _pillow()
    return image_cls.open(io.BytesIO(data) if isinstance(data, bytes) else str(data))


def downscaled_size(width: int, height: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    scale = max_side / max(width, height)
    return (int(width * scale), int(height * scale)) if scale < 1.0 else (width, height)


def decode_rgba(image, max_side: int = MAX_SIDE) -> tuple[np.ndarray, np.ndarray | None]:
    """(RGB uint8 downscaled to max_side, alpha uint8 or None) of a Pillow image.
    JPEGs are decoded at a reduced DCT scale when that is still >= max_side."""
    if image.format == "JPEG":
        w, h = image.size
        image.draft("RGB", (max(1, w * max_side // max(w, h)), max(1, h * max_side // max(w, h))))
    alpha = None
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"))
        rgb, alpha = rgba[..., :3], rgba[..., 3]
    else:
        if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            arr = np.asarray(image, dtype=np.float32)
            arr = (arr - arr.min()) / max(float(arr.max() - arr.min()), 1e-6) * 255.0
            rgb = np.repeat(arr.astype(np.uint8)[..., None], 3, axis=2)
        else:
            rgb = np.asarray(image.convert("RGB"))
    rgb = np.ascontiguousarray(rgb)
    small = downscaled(rgb, max_side)
    if alpha is not None:
        alpha = cv2.resize(alpha, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA) \
            if alpha.shape != small.shape[:2] else alpha
    return small, alpha


def texture(rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image (the trainer's texture measure)."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def flat_fraction(rgb: np.ndarray) -> float:
    """Share of pixels whose 3x3 neighbourhood is exactly one colour, measured
    at most 512 px on the long side: high for logos, UI, cartoons and text,
    low for photographs and painted textures (their noise breaks it)."""
    small = downscaled(rgb, 512)
    kernel = np.ones((3, 3), np.uint8)
    flat = np.ones(small.shape[:2], bool)
    for c in range(3):
        channel = small[..., c]
        flat &= cv2.dilate(channel, kernel) == cv2.erode(channel, kernel)
    return float(flat[1:-1, 1:-1].mean()) if min(flat.shape) > 2 else 1.0


def is_normal_map(rgb: np.ndarray) -> bool:
    """A tangent-space normal map by its colours: blue (z) high everywhere, red
    and green (x, y) centred on mid-grey."""
    small = downscaled(rgb, 128).reshape(-1, 3).astype(np.float32) / 255.0
    r, g, b = small[:, 0], small[:, 1], small[:, 2]
    return bool(abs(r.mean() - 0.5) < 0.08 and abs(g.mean() - 0.5) < 0.08 and b.mean() > 0.7
                and (b >= np.maximum(r, g) - 0.02).mean() > 0.9)


def content_reason(rgb: np.ndarray, alpha: np.ndarray | None,
                   min_texture: float = MIN_TEXTURE) -> tuple[str | None, dict]:
    """(why the decoded picture is unusable or None, its measurements)."""
    stats = {"texture": round(texture(rgb), 1)}
    if alpha is not None:
        clear = alpha < 128
        # a cut-out (sprite, decal, foliage card): mostly transparent over a
        # uniform fill; a wallpaper with an alpha channel over a real picture
        # (MATE's Flow) is read as the trainer reads it, without its alpha
        if float(clear.mean()) > MAX_TRANSPARENT and float(rgb[clear].std(axis=0).mean()) < 12.0:
            return "transparent", stats
    if is_normal_map(rgb):
        return "normal map (colours)", stats
    if stats["texture"] < min_texture:
        return "low texture", stats
    grey = cv2.cvtColor(downscaled(rgb, 256), cv2.COLOR_RGB2GRAY)
    stats["dark"] = round(float((grey < 24).mean()), 3)
    if stats["dark"] > MAX_DARK:
        return "dark", stats
    stats["flat"] = round(flat_fraction(rgb), 3)
    if stats["flat"] > MAX_FLAT_FRACTION:
        return "flat artwork", stats
    return None, stats


# --------------------------------------------------------------- sources

@dataclass(frozen=True)
class Candidate:
    package: str
    path: str                     # a file on disk (an image, or the archive holding it)
    member: str | None = None     # the image's name inside the archive
    fingerprint: str = ""         # what changes when the file (or member) changes
    order: int = 0                # a size proxy: larger first

    @property
    def key(self) -> str:
        return self.path if self.member is None else f"{self.path}!{self.member}"

    @property
    def id(self) -> str:
        return hashlib.sha1(self.key.encode()).hexdigest()[:16]

    @property
    def name(self) -> str:
        return self.member or self.path


@dataclass
class Source:
    """A named set of candidate images: a Debian package, or a list of files."""
    name: str
    files: list[str]
    version: str = ""
    licence: str = ""
    copyright: str = ""
    name_patterns: tuple = ()     # fnmatch patterns (lower case, on the path) dropped by name
    roots: tuple = ()             # only files under these folders ("" = all of the package's)

    def candidates(self) -> Iterator[Candidate]:
        """Its images, larger ones first (a picture shipped at several sizes is
        then indexed at its largest): files by header pixels, archive members
        by uncompressed size."""
        plain, archived = [], []
        if self.roots:
            files = [f for f in self.files
                     if any(f.startswith(root.rstrip("/") + "/") for root in self.roots)]
        else:
            files = [f for f in self.files if not f.startswith(NOT_PICTURE_TREES)]
        for path in sorted(set(files)):
            suffix = Path(path).suffix.lower()
            if suffix in ARCHIVE_EXTENSIONS:
                try:
                    with zipfile.ZipFile(path) as archive:
                        for info in archive.infolist():
                            if Path(info.filename).suffix.lower() in IMAGE_EXTENSIONS \
                                    and not info.is_dir():
                                archived.append(Candidate(self.name, path, info.filename,
                                                          f"{info.file_size}:{info.CRC:08x}",
                                                          info.file_size))
                except (zipfile.BadZipFile, OSError):
                    continue
            elif suffix in IMAGE_EXTENSIONS:
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                plain.append(Candidate(self.name, path, None, f"{st.st_size}:{st.st_mtime_ns}",
                                       _header_pixels(path)))
        yield from sorted(plain, key=lambda c: (-c.order, c.key))
        yield from sorted(archived, key=lambda c: (-c.order, c.key))


def _header_pixels(path: str) -> int:
    try:
        with open_image(path) as image:
            return image.size[0] * image.size[1]
    except Exception:                               # noqa: BLE001 - counted when decoded
        return 0


def package_files(package: str) -> list[str]:
    """The regular files an installed Debian package put on disk (dpkg's list)."""
    listing = Path(f"/var/lib/dpkg/info/{package}.list")
    if not listing.exists():
        arch = [p for p in Path("/var/lib/dpkg/info").glob(f"{package}:*.list")]
        if not arch:
            return []
        listing = arch[0]
    return [line for line in listing.read_text(errors="replace").splitlines()
            if line and os.path.isfile(line)]


def package_version(package: str) -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                             capture_output=True, text=True, timeout=30)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def licence_of(copyright_path: str | Path) -> str:
    """The licences a Debian copyright file names: the short names of its
    `License:` fields (machine-readable format), else the licences its text
    mentions, else 'see copyright'."""
    path = Path(copyright_path)
    if not path.exists():
        return "unknown (no copyright file)"
    text = path.read_text(errors="replace")
    names, stanza_names = [], []
    for stanza in re.split(r"\n\s*\n", text):
        licence = re.search(r"^License:[ \t]*(\S[^\n]*)$", stanza, re.MULTILINE)
        if not licence:
            continue
        name = licence.group(1).strip()
        files = re.search(r"^Files:[ \t]*((?:[^\n]*\n?)(?:[ \t]+[^\n]*\n?)*)", stanza, re.MULTILINE)
        if files:
            patterns = files.group(1).split()
            if patterns and all(_font_or_code(p) for p in patterns):
                continue                   # the fonts' or the packaging's licence
            if name not in stanza_names:
                stanza_names.append(name)
        if name not in names:
            names.append(name)
    names = stanza_names or names
    if names:
        return ", ".join(names)
    known = [("GPL-3", r"GNU General Public License[^\n]{0,40}(version 3|v3)|GPL-?3"),
             ("GPL-2+", r"GNU General Public License[^\n]{0,40}(version 2|v2)|GPL-?2"),
             ("LGPL", r"Lesser General Public License|LGPL"),
             ("CC-BY-SA", r"Attribution-ShareAlike|CC-BY-SA|CC BY-SA"),
             ("CC-BY", r"Creative Commons Attribution(?!-ShareAlike)|CC-BY(?!-SA)"),
             ("CC0", r"CC0|Public Domain Dedication"),
             ("public-domain", r"public domain"),
             ("MIT", r"\bMIT\b|Permission is hereby granted, free of charge"),
             ("BSD", r"Redistribution and use in source and binary forms"),
             ("Artistic", r"Artistic License")]
    found = [name for name, pattern in known if re.search(pattern, text, re.IGNORECASE)]
    return ", ".join(found) if found else "see copyright"


def _font_or_code(pattern: str) -> bool:
    low = pattern.lower()
    return (low.startswith("debian/") or "font" in low
            or low.endswith((".ttf", ".otf", ".pfb", ".js", ".py", ".c", ".h", ".cpp", ".xml")))


def package_source(package: str, name_patterns: tuple = ()) -> Source:
    copyright_path = f"/usr/share/doc/{package}/copyright"
    roots = PACKAGE_ROOTS.get(package, ())
    if package == "opencv-doc" and not name_patterns:   # the trainer's own name filter there
        name_patterns = tuple(p.lower() for p in EXCLUDED_PATTERNS)
    return Source(package, package_files(package), package_version(package),
                  licence_of(copyright_path), copyright_path, name_patterns, roots)


# --------------------------------------------------------------- exclusions

def exclusion_hashes(named_images: Iterable[tuple[str, np.ndarray]]) -> HashSet:
    """The perceptual hashes of images that must never be trained on."""
    refs = HashSet()
    for name, image in named_images:
        if image is not None:
            refs.add(phash(image), name)
    return refs


def read_image_file(path: str | Path) -> np.ndarray | None:
    """RGB uint8 of a file (Pillow; any format it reads), None if unreadable."""
    try:
        with open_image(path) as image:
            return np.asarray(image.convert("RGB"))
    except Exception:                                          # noqa: BLE001
        return None


def video_frames(path: str | Path, indices: Iterable[int] = (), every: int = 0) -> Iterator[tuple[str, np.ndarray]]:
    """(name, RGB) of the given frames of a video, and of every `every`-th frame."""
    capture = cv2.VideoCapture(str(path))
    wanted = set(indices)
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index in wanted or (every and index % every == 0):
            yield f"{path}#{index}", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        index += 1
    capture.release()


def held_out_files(roots=None) -> list[Path]:
    """Every file of the pictures `data.HELD_OUT` names, at every size a
    wallpaper folder ships (the trainer holds out one file per picture)."""
    from .data import HELD_OUT, IMAGE_ROOTS, image_key
    names = set(HELD_OUT)
    found = []
    for root in roots or IMAGE_ROOTS:
        root = Path(root)
        if root.is_dir():
            found += [p for p in sorted(root.rglob("*"))
                      if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and image_key(p) in names]
    return found


OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
# opencv-doc's copies of Oxford images, and its real multi-view pictures the
# real-data validation set (issue 19) uses: the aloe stereo pair with its
# disparity, the calibrated chessboard pairs.
OPENCV_EXCLUDED = ("graf*", "leuven*", "aloe*", "left*.jpg", "right*.jpg")


def default_exclusions(oxford_dir: str | Path | None, videos: dict | None = None,
                       video_every: int = 10, opencv_dir: Path = OPENCV_DATA,
                       image_roots=None) -> tuple[HashSet, dict]:
    """The references no training image may match, and how many of each kind:
    the Oxford images under `oxford_dir`, opencv-doc's copies of them and its
    real multi-view validation pictures, every file of the held-out
    validation pictures, and frames of the videos the validation set and the
    reports use (`videos`: {path: frame indices}, plus every `video_every`-th
    frame)."""
    named: list[tuple[str, np.ndarray]] = []
    counts = {}
    oxford = sorted(Path(oxford_dir).rglob("img*.p*")) if oxford_dir and Path(oxford_dir).is_dir() else []
    counts["oxford"] = len(oxford)
    named += [(str(p), read_image_file(p)) for p in oxford]
    opencv = sorted({p for pattern in OPENCV_EXCLUDED for p in Path(opencv_dir).glob(pattern)})
    counts["opencv-doc oxford copies and real-pair validation images"] = len(opencv)
    named += [(str(p), read_image_file(p)) for p in opencv]
    held = held_out_files(image_roots)
    counts["held-out validation pictures (files)"] = len(held)
    named += [(str(p), read_image_file(p)) for p in held]
    frames = 0
    for path, indices in (videos or {}).items():
        for name, frame in video_frames(path, indices, video_every):
            named.append((name, frame))
            frames += 1
    counts["video frames"] = frames
    return exclusion_hashes(named), counts


# --------------------------------------------------------------- the index

def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    if path.exists():
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:        # a line cut short by a killed run
                    continue
    return rows


def _write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True) + "\n")
    os.replace(tmp, path)


def load_manifest(index_dir: str | Path = DEFAULT_INDEX_DIR) -> list[dict]:
    """The index's entries (in the order they were added), removed ones left out."""
    entries: OrderedDict[str, dict] = OrderedDict()
    for row in _read_jsonl(Path(index_dir) / "manifest.jsonl"):
        if row.get("removed"):
            entries.pop(row["id"], None)
        else:
            entries[row["id"]] = row
    return list(entries.values())


FILTERS = ("candidates", "name", "decoded", "size", "content", "not excluded", "unique")


@dataclass
class IndexReport:
    """Per source: how many candidates reached each filter stage (FILTERS),
    the reasons they were dropped, and how many entries this run added."""
    stages: dict = field(default_factory=dict)       # source -> Counter(stage -> count)
    reasons: dict = field(default_factory=dict)      # source -> Counter(reason -> count)
    added: Counter = field(default_factory=Counter)
    removed: Counter = field(default_factory=Counter)
    decoded_now: int = 0
    seconds: float = 0.0

    def table(self) -> str:
        rows = [("source",) + FILTERS + ("added now",)]
        total = Counter()
        for source, stages in self.stages.items():
            rows.append((source,) + tuple(str(stages[s]) for s in FILTERS) + (str(self.added[source]),))
            total.update(stages)
        rows.append(("total",) + tuple(str(total[s]) for s in FILTERS) +
                    (str(sum(self.added.values())),))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                                   enumerate(zip(r, widths))) for r in rows)


_STAGE_OF = {"map name": 1, "ui/art name": 1, "pattern": 1, "unreadable": 2, "small": 3,
             "transparent": 4, "normal map (colours)": 4, "low texture": 4, "flat artwork": 4,
             "dark": 4,
             "excluded": 5, "duplicate": 6, "indexed": 7}


def _stage_counts(records: Iterable[dict]) -> tuple[Counter, Counter]:
    stages, reasons = Counter(), Counter()
    for rec in records:
        reached = _STAGE_OF.get(rec["status"], 7)
        for i in range(reached):
            stages[FILTERS[i]] += 1
        if rec["status"] != "indexed":
            reasons[rec["status"]] += 1
    return stages, reasons


def build_index(index_dir: str | Path, sources: Sequence[Source], exclusions: HashSet,
                max_side: int = MAX_SIDE, min_side: int = INDEX_MIN_SIDE,
                min_texture: float = MIN_TEXTURE, limit_per_source: int = 0,
                log: Callable[[str], None] | None = print,
                deadline: float | None = None, notes: dict | None = None) -> IndexReport:
    """Index the sources' images into `index_dir` (see the module docstring);
    idempotent: a candidate already seen with the same fingerprint is not
    decoded again. `limit_per_source` (tests, trials) stops a source after
    that many new candidates; `deadline` (time.time()) stops the run cleanly
    before it, resumable. Returns the counts per source."""
    start = time.time()
    index_dir = Path(index_dir)
    (index_dir / "images").mkdir(parents=True, exist_ok=True)
    cand_path, man_path = index_dir / "candidates.jsonl", index_dir / "manifest.jsonl"
    rules_path = index_dir / "rules.json"
    rules = json.loads(rules_path.read_text()) if rules_path.exists() else None
    now = {"version": RULES_VERSION, **_filters(max_side, min_side, min_texture)}
    identity = ("version", "max_side", "min_side", "min_texture")
    if rules is None or any(rules.get(k) != now[k] for k in identity):
        if rules is not None and log:
            log("index rules changed (" + ", ".join(f"{k} {rules.get(k)} -> {now[k]}"
                                                    for k in identity if rules.get(k) != now[k])
                + "): every candidate is examined again")
        for path in (cand_path, man_path):
            if path.exists():
                os.replace(path, path.with_name(path.stem + ".previous.jsonl"))
        rules_path.write_text(json.dumps(now, indent=1))
    seen: dict[str, dict] = {}
    for rec in _read_jsonl(cand_path):
        seen[rec["key"]] = rec
    # entries whose cached copy is gone are examined again (the copy is rewritten)
    entries = OrderedDict((e["id"], e) for e in load_manifest(index_dir)
                          if (index_dir / e["cached"]).is_file())
    report = IndexReport()

    # Entries an exclusion reference now matches leave the index.
    dropped = []
    for entry in list(entries.values()):
        distance, ref = exclusions.nearest(int(entry["phash"], 16))
        if distance <= EXCLUDE_BITS:
            dropped.append((entry, ref))
    cand_file = open(cand_path, "a", encoding="utf-8")
    man_file = open(man_path, "a", encoding="utf-8")

    def record(candidate: Candidate, status: str, **extra) -> dict:
        rec = {"key": candidate.key, "package": candidate.package,
               "fingerprint": candidate.fingerprint, "status": status, **extra}
        seen[candidate.key] = rec
        cand_file.write(json.dumps(rec, sort_keys=True) + "\n")
        return rec

    # Files gone from a package (upgraded, removed) leave the index too.
    listed = [(source, list(source.candidates())) for source in sources]
    visited = {c.key for _, candidates in listed for c in candidates}
    names = {source.name for source in sources}
    for entry in [e for e in entries.values() if e["package"] in names and e["key"] not in visited]:
        dropped.append((entry, None))
    removed_ids = set()
    for entry, ref in dropped:
        del entries[entry["id"]]
        removed_ids.add(entry["id"])
        reason = f"excluded: {ref}" if ref else "file gone"
        man_file.write(json.dumps({"id": entry["id"], "removed": reason}) + "\n")
        if ref and entry["key"] in seen:
            record(Candidate(entry["package"], entry["path"], entry.get("member"),
                             seen[entry["key"]]["fingerprint"]), "excluded", reference=ref)
        elif not ref:
            seen.pop(entry["key"], None)
        (index_dir / entry["cached"]).unlink(missing_ok=True)
        report.removed[entry["package"]] += 1
    # what was a duplicate of a removed image is examined again
    for key in [k for k, rec in seen.items()
                if rec["status"] == "duplicate" and rec.get("of") in removed_ids]:
        del seen[key]
    index_hashes = HashSet()
    for entry in entries.values():
        index_hashes.add(int(entry["phash"], 16), entry["id"],
                         int(entry["fhash"], 16) if "fhash" in entry else None)

    stopped = False
    try:
        for source, candidates in listed:
            records = []
            new = 0
            archive_cache: dict[str, zipfile.ZipFile] = {}
            for candidate in candidates:
                old = seen.get(candidate.key)
                if old is not None and old["fingerprint"] == candidate.fingerprint \
                        and not (old["status"] == "indexed" and old.get("id") not in entries):
                    records.append(old)
                    continue
                if deadline is not None and time.time() > deadline:
                    stopped = True
                    break
                if limit_per_source and new >= limit_per_source:
                    break
                new += 1
                report.decoded_now += 1
                rec = _index_one(candidate, source, index_dir, archive_cache, exclusions,
                                 index_hashes, entries, record, man_file, max_side, min_side,
                                 min_texture)
                if rec["status"] == "indexed":
                    report.added[source.name] += 1
                records.append(rec)
                if log and report.decoded_now % 500 == 0:
                    cand_file.flush()
                    man_file.flush()
                    log(f"  {source.name}: {new} new candidates, {len(entries)} in the index "
                        f"({time.time() - start:.0f} s)")
            for archive in archive_cache.values():
                archive.close()
            report.stages[source.name], report.reasons[source.name] = _stage_counts(records)
            if log:
                st = report.stages[source.name]
                log(f"{source.name}: " + ", ".join(f"{s} {st[s]}" for s in FILTERS) +
                    f"; added now {report.added[source.name]}")
            if stopped:
                if log:
                    log("deadline reached: stopped, resumable (run again to continue)")
                break
    finally:
        cand_file.close()
        man_file.close()
    # compaction: one line per candidate / entry
    _write_jsonl(cand_path, seen.values())
    _write_jsonl(man_path, entries.values())
    report.seconds = time.time() - start
    if not stopped:
        _delete_orphans(index_dir, entries.values())
        _write_summary(index_dir, sources, report, exclusions, len(entries), notes or {},
                       _filters(max_side, min_side, min_texture))
    return report


def _index_one(candidate, source, index_dir, archive_cache, exclusions, index_hashes, entries,
               record, man_file, max_side, min_side, min_texture) -> dict:
    if any(fnmatch.fnmatch(candidate.name.lower(), p) for p in source.name_patterns):
        return record(candidate, "pattern")
    reason = map_name_reason(candidate.name)
    if reason:
        return record(candidate, reason)
    try:
        if candidate.member is None:
            data = candidate.path
        else:
            archive = archive_cache.get(candidate.path)
            if archive is None:
                archive = archive_cache[candidate.path] = zipfile.ZipFile(candidate.path)
            data = archive.read(candidate.member)
        with open_image(data) as image:
            width, height = image.size
            small_w, small_h = downscaled_size(width, height, max_side)
            if min(small_w, small_h) < min_side:
                return record(candidate, "small", width=width, height=height)
            rgb, alpha = decode_rgba(image, max_side)
    except Exception as exc:                                  # noqa: BLE001 - any decoder error
        return record(candidate, "unreadable", error=f"{type(exc).__name__}: {exc}"[:200])
    if min(rgb.shape[:2]) < min_side:
        return record(candidate, "small", width=width, height=height)
    reason, stats = content_reason(rgb, alpha, min_texture)
    if reason:
        return record(candidate, reason, width=width, height=height, **stats)
    h = phash(rgb)
    distance, ref = exclusions.nearest(h)
    if distance <= EXCLUDE_BITS:
        return record(candidate, "excluded", reference=ref, distance=distance, phash=f"{h:016x}")
    fine = fine_hash(rgb)
    dup = index_hashes.duplicate(h, fine, DUPLICATE_BITS, FINE_DUPLICATE_BITS)
    if dup is not None:
        return record(candidate, "duplicate", of=dup[2], distance=dup[0], fine_distance=dup[1],
                      phash=f"{h:016x}")
    cached = Path("images") / candidate.id[:2] / f"{candidate.id}.jpg"
    target = index_dir / cached
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp.jpg")
    ok = cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                     [cv2.IMWRITE_JPEG_QUALITY, CACHE_QUALITY,
                      cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
    if not ok:
        return record(candidate, "unreadable", error="cache write failed")
    os.replace(tmp, target)
    entry = {"id": candidate.id, "key": candidate.key, "package": source.name,
             "version": source.version, "licence": source.licence,
             "copyright": source.copyright, "path": candidate.path, "member": candidate.member,
             "phash": f"{h:016x}", "fhash": f"{fine:064x}", "width": width, "height": height,
             "cached": str(cached), "cached_width": int(rgb.shape[1]),
             "cached_height": int(rgb.shape[0]), **stats}
    entries[candidate.id] = entry
    index_hashes.add(h, candidate.id, fine)
    man_file.write(json.dumps(entry, sort_keys=True) + "\n")
    return record(candidate, "indexed", id=candidate.id, phash=f"{h:016x}")


def _filters(max_side: int = MAX_SIDE, min_side: int = INDEX_MIN_SIDE,
             min_texture: float = MIN_TEXTURE) -> dict:
    return {"rules_version": RULES_VERSION, "min_side": min_side, "max_side": max_side,
            "min_texture": min_texture, "max_flat_fraction": MAX_FLAT_FRACTION,
            "max_transparent": MAX_TRANSPARENT, "max_dark": MAX_DARK,
            "duplicate_bits": DUPLICATE_BITS, "fine_duplicate_bits": FINE_DUPLICATE_BITS,
            "exclude_bits": EXCLUDE_BITS}


def _delete_orphans(index_dir: Path, entries) -> None:
    """Cached copies no entry refers to (left by removed entries, changed
    rules or a killed run) are deleted."""
    kept = {str(index_dir / e["cached"]) for e in entries}
    for path in (index_dir / "images").rglob("*"):
        if path.is_file() and str(path) not in kept:
            path.unlink()
    for path in (index_dir / "candidates.previous.jsonl", index_dir / "manifest.previous.jsonl"):
        path.unlink(missing_ok=True)


def _write_summary(index_dir: Path, sources, report: IndexReport, exclusions: HashSet,
                   total: int, notes: dict, filters: dict) -> None:
    per_source = {}
    for source in sources:
        per_source[source.name] = {
            "version": source.version, "licence": source.licence,
            "stages": {s: report.stages.get(source.name, Counter())[s] for s in FILTERS},
            "dropped": dict(report.reasons.get(source.name, Counter()))}
    summary = {"images": total, "sources": per_source,
               "exclusion_references": len(exclusions), **notes,
               "filters": filters,
               "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    tmp = index_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, index_dir / "summary.json")


def summary_markdown(summary: dict) -> str:
    """The counts of `summary.json` as a Markdown table (docs/training_data.md)."""
    head = ["package", "licence"] + list(FILTERS)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    total = Counter()
    for name, source in summary["sources"].items():
        stages = source["stages"]
        total.update(stages)
        lines.append("| " + " | ".join([name, source["licence"]] +
                                       [str(stages[s]) for s in FILTERS]) + " |")
    lines.append("| **total** | | " + " | ".join(f"**{total[s]}**" for s in FILTERS) + " |")
    return "\n".join(lines)
