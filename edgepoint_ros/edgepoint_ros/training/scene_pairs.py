"""Training pairs with 3D structure: textured planes at several depths and
orientations, composited with a z-buffer and seen from two camera poses
(issue 19). Homography pairs (`data.make_pair`) have no parallax and no
occlusion; these have both, with exact ground truth.

A scene is a background plane (infinite, nearly facing camera A, far) and
2-4 foreground rectangles (nearer, turned up to `max_tilt_deg` out of the
image), each textured with a crop of a bank image and shaded by a Lambertian
light (per view, so a light change darkens planes differently). Camera A sits
at the origin looking down +z; camera B is moved by a baseline of a fraction
of the foreground depth, turned to look at the scene's centre and rolled.
Every plane maps to each view by a homography (texture pixel -> image
pixel: K [R a, R b, R X0 + t]), so OpenCV's warpPerspective renders it; the
depth of every pixel on every plane is exact (ray-plane intersection), and
the nearest plane wins.

Ground truth, per pixel of A: the 3D point it shows (its plane's ray
intersection), projected into B (`flow_ab`, B pixel coordinates), and
`valid_ab`: the point is inside B and visible there, i.e. the pixels of B
around the projection (all four of the floor/ceil neighbours) show the same
plane. Occluded points, points that leave B, and points within a pixel of
an occlusion edge are invalid. The same from B to A (`flow_ba`, `valid_ba`).

Pixel convention as OpenCV's and `data.make_pair`'s: integer coordinates are
pixel centres.

The trainer mixes them with homography pairs (`train --pairs-3d P`,
`PairConfig.pairs_3d`): a batch that holds one carries every pair's
correspondences as a `losses.DenseWarp` (a homography pair's from
`homography_flow`), which the losses read in place of H_ab.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from .data import photometric


@dataclass
class SceneConfig:
    size: int = 256                               # side of the views
    foreground_planes: tuple[int, int] = (2, 4)   # per scene, besides the background
    focal: tuple[float, float] = (0.8, 1.3)       # focal length, in view sides
    background_depth: tuple[float, float] = (6.0, 12.0)
    background_tilt_deg: float = 25.0
    foreground_depth: tuple[float, float] = (2.0, 5.0)
    max_tilt_deg: float = 60.0                    # foreground planes, out of the image
    plane_extent: tuple[float, float] = (0.2, 0.6)  # foreground width, fraction of A's view there
    baseline: tuple[float, float] = (0.05, 0.3)   # camera B's move, fraction of the scene depth
    max_roll_deg: float = 30.0                    # camera B's turn about its axis
    texture_side: tuple[int, int] = (160, 400)    # texture crops (source pixels)
    ambient: float = 0.45                         # Lambertian shading: ambient + (1-ambient) n.l
    light_change: float = 0.5                     # probability that B's light comes from elsewhere
    heavy_blur: float = 0.0                       # as PairConfig
    grayscale: float = 0.0


@dataclass
class Plane:
    origin: np.ndarray          # world point of texture pixel (0, 0)
    axis_s: np.ndarray          # world step of one texture pixel along s (columns)
    axis_t: np.ndarray          # and along t (rows)
    normal: np.ndarray          # unit, facing camera A
    texture: np.ndarray         # RGB uint8 (rows t, columns s)
    bounded: bool = True        # False: the background, infinite (texture reflected)

    @property
    def offset(self) -> float:  # the plane is normal . X = offset
        return float(self.normal @ self.origin)


@dataclass
class Camera:
    K: np.ndarray
    R: np.ndarray               # world -> camera rotation
    t: np.ndarray               # world -> camera translation: X_cam = R X + t

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N,3) world points -> (N,2) pixels and (N,) depths."""
        R, t, K = self.R, self.t, self.K
        x, y, z = (points[:, 0] * R[i, 0] + points[:, 1] * R[i, 1] + points[:, 2] * R[i, 2] + t[i]
                   for i in range(3))
        w = np.where(np.abs(z) < 1e-12, 1e-12, z)
        return np.column_stack([K[0, 0] * x / w + K[0, 2], K[1, 1] * y / w + K[1, 2]]), z

    def rays(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N,2) pixels -> world camera centre (3,) and (N,3) world ray directions
        scaled so that a step of 1 is a depth of 1 in this camera."""
        K, R = self.K, self.R                 # K: focal, principal point, no skew
        dx = (pixels[:, 0] - K[0, 2]) / K[0, 0]
        dy = (pixels[:, 1] - K[1, 2]) / K[1, 1]
        rays = dx[:, None] * R[0] + dy[:, None] * R[1] + R[2]   # R^T (dx, dy, 1) per row
        return -R.T @ self.t, rays


@dataclass
class ScenePair:
    view_a: np.ndarray
    view_b: np.ndarray
    flow_ab: np.ndarray         # (H,W,2) float32: where each A pixel's scene point is in B
    valid_ab: np.ndarray        # (H,W) bool
    flow_ba: np.ndarray
    valid_ba: np.ndarray
    plane_a: np.ndarray         # (H,W) int: the plane each pixel shows (0 = background)
    plane_b: np.ndarray
    depth_a: np.ndarray         # (H,W) float: its depth in that view
    depth_b: np.ndarray
    cameras: tuple[Camera, Camera] = field(repr=False, default=None)
    planes: list[Plane] = field(repr=False, default=None)


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    rvec = np.asarray(axis, np.float64) / (np.linalg.norm(axis) + 1e-12) * angle
    return cv2.Rodrigues(rvec)[0]


def _turned(normal: np.ndarray, rng: np.random.Generator, max_deg: float) -> np.ndarray:
    """`normal` turned by up to max_deg about a random axis perpendicular to it."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(normal[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(normal, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(normal, e1)
    phi = rng.uniform(0, 2 * math.pi)
    axis = math.cos(phi) * e1 + math.sin(phi) * e2
    return _rotation(axis, math.radians(rng.uniform(0, max_deg))) @ normal


def _texture(bank, rng: np.random.Generator, cfg: SceneConfig) -> np.ndarray:
    image = bank[int(rng.integers(len(bank)))]
    h, w = image.shape[:2]
    side = int(rng.integers(cfg.texture_side[0], cfg.texture_side[1] + 1))
    if min(h, w) < side:
        factor = side / min(h, w) * 1.01
        image = cv2.resize(image, (int(w * factor) + 1, int(h * factor) + 1))
        h, w = image.shape[:2]
    aspect = math.exp(rng.uniform(math.log(0.6), math.log(1.0)))
    tw, th = (side, int(side * aspect)) if rng.random() < 0.5 else (int(side * aspect), side)
    y0 = int(rng.integers(0, h - th + 1))
    x0 = int(rng.integers(0, w - tw + 1))
    crop = image[y0:y0 + th, x0:x0 + tw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)


def _plane(centre, normal, width, height, texture, rng, bounded=True) -> Plane:
    helper = np.array([0.0, 1.0, 0.0]) if abs(normal[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(helper, normal)
    u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    spin = rng.uniform(0, 2 * math.pi)
    u, v = math.cos(spin) * u + math.sin(spin) * v, -math.sin(spin) * u + math.cos(spin) * v
    th, tw = texture.shape[:2]
    axis_s, axis_t = u * (width / tw), v * (height / th)
    origin = centre - axis_s * (tw - 1) / 2 - axis_t * (th - 1) / 2
    return Plane(origin, axis_s, axis_t, normal, texture, bounded)


def plane_homography(plane: Plane, camera: Camera) -> np.ndarray:
    """Texture pixel (s, t) -> image pixel of `camera`."""
    m = np.column_stack([camera.R @ plane.axis_s, camera.R @ plane.axis_t,
                         camera.R @ plane.origin + camera.t])
    return camera.K @ m


def ray_plane(plane: Plane, camera: Camera, pixels: np.ndarray, rays=None):
    """(N,2) pixels -> depth in `camera` of the plane there (inf where the ray
    misses it: behind the camera, or outside a bounded plane's texture),
    texture coordinates (N,2), and world points (N,3). `rays`: camera.rays(pixels)."""
    centre, rays = rays or camera.rays(pixels)
    denom = rays @ plane.normal
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = (plane.offset - plane.normal @ centre) / denom
    depth = np.where(np.isfinite(depth) & (depth > 1e-6), depth, np.inf)
    points = centre + rays * np.where(np.isfinite(depth), depth, 0.0)[:, None]
    rel = points - plane.origin
    # axis_s and axis_t are orthogonal: texture coordinates by projection on each
    st = np.column_stack([rel @ (plane.axis_s / (plane.axis_s @ plane.axis_s)),
                          rel @ (plane.axis_t / (plane.axis_t @ plane.axis_t))])
    if plane.bounded:
        th, tw = plane.texture.shape[:2]
        inside = (st[:, 0] >= -0.5) & (st[:, 0] <= tw - 0.5) & (st[:, 1] >= -0.5) & (st[:, 1] <= th - 0.5)
        depth = np.where(inside, depth, np.inf)
    return depth, st, points


def _grid(size: int) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size]
    return np.column_stack([xs.ravel(), ys.ravel()]).astype(np.float64)


def render(planes: list[Plane], camera: Camera, size: int, light: np.ndarray, ambient: float):
    """(RGB float32 0-1, plane index map, depth map) of the scene in `camera`."""
    pixels = _grid(size)
    rays = camera.rays(pixels)
    depths = np.stack([ray_plane(p, camera, pixels, rays)[0]
                       for p in planes]).reshape(len(planes), size, size)
    index = depths.argmin(0)
    depth = np.take_along_axis(depths, index[None], 0)[0]
    image = np.zeros((size, size, 3), np.float32)
    for k, plane in enumerate(planes):
        where = index == k
        if not where.any():
            continue
        colour = cv2.warpPerspective(plane.texture, plane_homography(plane, camera), (size, size),
                                     flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        shade = ambient + (1 - ambient) * max(0.0, float(plane.normal @ -light))
        image[where] = colour[where].astype(np.float32) / 255.0 * shade
    return image, index, depth


def correspondence(planes, src: Camera, dst: Camera, index_src, depth_src, index_dst):
    """Where each pixel of the source view lands in the destination view
    (H,W,2) and whether it is seen there (H,W): inside the view, and all four
    integer pixels around it showing the same plane."""
    size = index_src.shape[0]
    pixels = _grid(size)
    centre, rays = src.rays(pixels)
    points = centre + rays * depth_src.reshape(-1, 1)
    projected, z = dst.project(points)
    x, y = projected[:, 0], projected[:, 1]
    valid = (z > 0) & (x >= 0) & (x <= size - 1) & (y >= 0) & (y <= size - 1)
    k = index_src.ravel()
    for fx in (np.floor, np.ceil):
        for fy in (np.floor, np.ceil):
            xi = np.clip(fx(x), 0, size - 1).astype(int)
            yi = np.clip(fy(y), 0, size - 1).astype(int)
            valid &= index_dst[yi, xi] == k
    return (projected.reshape(size, size, 2).astype(np.float32), valid.reshape(size, size))


def _look_at(centre: np.ndarray, target: np.ndarray, roll: float) -> np.ndarray:
    """World -> camera rotation of a camera at `centre` looking at `target`."""
    z = target - centre
    z /= np.linalg.norm(z)
    x = np.cross(np.array([0.0, 1.0, 0.0]), z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    rotation = np.stack([x, y, z])
    c, s = math.cos(roll), math.sin(roll)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ rotation


def _in_front(plane: Plane, camera: Camera, near: float) -> bool:
    th, tw = plane.texture.shape[:2]
    corners = np.array([plane.origin + plane.axis_s * s + plane.axis_t * t
                        for s in (-0.5, tw - 0.5) for t in (-0.5, th - 0.5)])
    return bool((camera.project(corners)[1] > near).all())


def random_scene(bank, rng: np.random.Generator, cfg: SceneConfig, tries: int = 20):
    """(planes, camera A, camera B) with every plane in front of both cameras
    and the background behind every pixel of both views."""
    size = cfg.size
    for _ in range(tries):
        f = size * rng.uniform(*cfg.focal)
        K = np.array([[f, 0, (size - 1) / 2], [0, f, (size - 1) / 2], [0, 0, 1]])
        cam_a = Camera(K, np.eye(3), np.zeros(3))
        z_bg = rng.uniform(*cfg.background_depth)
        n_bg = _turned(np.array([0.0, 0.0, -1.0]), rng, cfg.background_tilt_deg)
        texture = _texture(bank, rng, cfg)
        # the background's texture pixel: a view pixel's size at its depth, give or take 2x
        pixel = z_bg / f * math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
        th, tw = texture.shape[:2]
        planes = [_plane(np.array([0.0, 0.0, z_bg]), n_bg, pixel * tw, pixel * th, texture, rng,
                         bounded=False)]
        for _ in range(int(rng.integers(cfg.foreground_planes[0], cfg.foreground_planes[1] + 1))):
            z = rng.uniform(*cfg.foreground_depth)
            px = rng.uniform(0.1, 0.9, 2) * (size - 1)
            centre = np.append((px - (size - 1) / 2) / f * z, z)
            normal = _turned(np.array([0.0, 0.0, -1.0]), rng, cfg.max_tilt_deg)
            texture = _texture(bank, rng, cfg)
            width = rng.uniform(*cfg.plane_extent) * size / f * z
            th, tw = texture.shape[:2]
            planes.append(_plane(centre, normal, width, width * th / tw, texture, rng))
        depth_fg = float(np.median([p.origin[2] for p in planes[1:]] or [z_bg]))
        direction = rng.normal(size=3) * np.array([1.0, 1.0, 0.5])
        centre_b = direction / np.linalg.norm(direction) * rng.uniform(*cfg.baseline) * depth_fg
        target = np.array([*rng.uniform(-0.1, 0.1, 2) * depth_fg, depth_fg])
        rotation = _look_at(centre_b, target, math.radians(rng.uniform(-cfg.max_roll_deg,
                                                                      cfg.max_roll_deg)))
        cam_b = Camera(K, rotation, -rotation @ centre_b)
        if not all(_in_front(p, c, 0.2) for p in planes[1:] for c in (cam_a, cam_b)):
            continue
        corners = np.array([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]], float)
        if all(np.isfinite(ray_plane(planes[0], c, corners)[0]).all() for c in (cam_a, cam_b)):
            return planes, cam_a, cam_b
    raise RuntimeError("no valid scene in %d tries" % tries)


def _light(rng: np.random.Generator) -> np.ndarray:
    """A unit light direction (travelling into the scene, within 60 degrees of +z)."""
    return _turned(np.array([0.0, 0.0, 1.0]), rng, 60.0)


def make_scene_pair(bank, rng: np.random.Generator, cfg: SceneConfig | None = None) -> ScenePair:
    """A pair of views of a random plane scene with exact dense correspondences
    and occlusion masks (module docstring); photometric changes as
    `data.make_pair`'s, per view."""
    cfg = cfg or SceneConfig()
    planes, cam_a, cam_b = random_scene(bank, rng, cfg)
    if cfg.grayscale > 0 and rng.random() < cfg.grayscale:
        for plane in planes:
            grey = cv2.cvtColor(plane.texture, cv2.COLOR_RGB2GRAY)
            plane.texture = np.repeat(grey[..., None], 3, axis=2)
    light_a = _light(rng)
    light_b = _light(rng) if rng.random() < cfg.light_change else light_a
    image_a, index_a, depth_a = render(planes, cam_a, cfg.size, light_a, cfg.ambient)
    image_b, index_b, depth_b = render(planes, cam_b, cfg.size, light_b, cfg.ambient)
    flow_ab, valid_ab = correspondence(planes, cam_a, cam_b, index_a, depth_a, index_b)
    flow_ba, valid_ba = correspondence(planes, cam_b, cam_a, index_b, depth_b, index_a)
    to_u8 = lambda im: (np.clip(im, 0, 1) * 255 + 0.5).astype(np.uint8)  # noqa: E731
    return ScenePair(photometric(to_u8(image_a), rng, cfg.heavy_blur),
                     photometric(to_u8(image_b), rng, cfg.heavy_blur),
                     flow_ab, valid_ab, flow_ba, valid_ba, index_a, index_b, depth_a, depth_b,
                     (cam_a, cam_b), planes)


def homography_flow(h_ab: np.ndarray, mask_a: np.ndarray, mask_b: np.ndarray):
    """A homography pair as dense correspondences, as `correspondence` gives
    them for a scene: (flow_ab, valid_ab, flow_ba, valid_ba), valid where
    both ends lie on real content (`losses.point_is_valid`'s rule: the
    nearest pixel inside the view and on its mask)."""
    size_h, size_w = mask_a.shape
    ys, xs = np.mgrid[0:size_h, 0:size_w]
    grid = np.stack([xs, ys], -1).reshape(1, -1, 2).astype(np.float64)
    out = []
    for h, src, dst in ((h_ab, mask_a, mask_b), (np.linalg.inv(h_ab), mask_b, mask_a)):
        flow = cv2.perspectiveTransform(grid, h.astype(np.float64))[0]
        x, y = np.round(flow[:, 0]).astype(int), np.round(flow[:, 1]).astype(int)
        inside = (x >= 0) & (x < size_w) & (y >= 0) & (y < size_h)
        valid = inside & (src.ravel() > 0)
        valid[inside] &= dst[y[inside], x[inside]] > 0
        out += [flow.reshape(size_h, size_w, 2).astype(np.float32), valid.reshape(size_h, size_w)]
    return tuple(out)
