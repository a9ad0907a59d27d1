"""Training losses for EdgePoint (student) with an optional XFeat teacher.

Notation: a batch of pairs (A, B) with H_ab mapping A pixels to B pixels.
Student outputs: score logits at full resolution, raw descriptors at H/8.

* descriptor_contrastive: points p in A (teacher keypoints + random), their
  true positions q = H_ab(p) in B; student descriptors sampled at p and q;
  InfoNCE over the point set in both directions (the positive is the true
  correspondence; other points closer than `exclusion_px` to it are ignored,
  since they are not wrong matches). This is what makes descriptors match.
* descriptor_distill: 1 - cosine between student and teacher descriptor maps
  (a teacher whose descriptors have EdgePoint's shape: XFeat).
* similarity_distill: for a teacher whose descriptors have another width
  (ALIKED, 128-d), the student's match distribution over the contrastive
  point set (softmax of similarities, each A point against all B points and
  back) should equal the teacher's: KL(teacher || student), on the rows
  where the teacher's best match is the true one (within `exclusion_px`).
  It carries what the teacher knows about which wrong points look alike,
  which the contrastive loss's single right answer does not; rows the
  teacher gets wrong would teach wrong matches (on the training pairs'
  wide rotations and zooms ALIKED-N16rot finds the true match for 13 % of
  its keypoints, EdgePoint-v13 for 32 %; on mild pairs 78 % and 75 %).
* detector_distill: binary cross-entropy of the student's score logits
  against the teacher's keypoints (NMS peaks of its score map, top-k per
  image), with positives up-weighted; teaches where and how sharply to fire.
* repeatability: the student's score probability map of B warped into A
  should equal A's (L1 on pixels whose correspondence is valid); makes
  detections follow the scene under homographies and illumination changes.
* peak_reprojection: the student's own top-k NMS peaks in one view, refined
  by the run-time soft-argmax (detection.py: window 2r+1, temperature 0.1 on
  probabilities), warped into the other view, where the soft-argmax of the
  window around the warped point must land on it (distance in pixels, both
  directions; ALIKE's reprojection loss), plus how spread the peak's window
  is (ALIKE's dispersity loss, which keeps peaks sharp). Trains sub-pixel
  localisation, which the L1 repeatability of whole maps barely constrains.

Where a batch holds pairs that no homography relates (3D scenes with
parallax and occlusion, training/scene_pairs.py), `h_ab` is a `DenseWarp`
instead of a (B,3,3) tensor: per-pixel correspondences both ways with their
validity (seen in the other view), which every loss here reads through
`carry` and `invert`. With a tensor, the homography path is the one it has
always been, operation for operation.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def normalized_grid(points: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Pixel coordinates (.., 2) -> grid_sample coordinates for align_corners=False.
    Matches detection.descriptor_grid_coordinates: pixel x lies at (x+0.5)/W*2-1."""
    scale = torch.tensor([2.0 / width, 2.0 / height], device=points.device)
    return (points + 0.5) * scale - 1.0


def sample_map(feature_map: torch.Tensor, points: torch.Tensor, image_wh: tuple[int, int]):
    """Bilinear samples of (B,C,h,w) at (B,N,2) image pixels -> (B,N,C)."""
    grid = normalized_grid(points, *image_wh)[:, :, None, :]
    out = F.grid_sample(feature_map, grid, mode="bilinear", padding_mode="border",
                        align_corners=False)
    return out[..., 0].transpose(1, 2)


def apply_homographies(points: torch.Tensor, homographies: torch.Tensor) -> torch.Tensor:
    """(B,N,2) through (B,3,3)."""
    ones = torch.ones_like(points[..., :1])
    projected = torch.cat([points, ones], dim=-1) @ homographies.transpose(1, 2)
    return projected[..., :2] / projected[..., 2:].clamp(min=1e-8)


@dataclass
class DenseWarp:
    """Dense correspondences of a batch: where each pixel of A shows up in B
    (B,H,W,2 pixels) and whether it is seen there (B,H,W bool), and the same
    from B to A."""
    flow_ab: torch.Tensor
    valid_ab: torch.Tensor
    flow_ba: torch.Tensor
    valid_ba: torch.Tensor

    def inverse(self) -> "DenseWarp":
        return DenseWarp(self.flow_ba, self.valid_ba, self.flow_ab, self.valid_ab)

    def to(self, device, non_blocking: bool = False) -> "DenseWarp":
        return DenseWarp(*(t.to(device, non_blocking=non_blocking) for t in
                           (self.flow_ab, self.valid_ab, self.flow_ba, self.valid_ba)))


def invert(warp):
    """B -> A: the inverse homographies, or the dense warp read the other way."""
    return warp.inverse() if isinstance(warp, DenseWarp) else torch.linalg.inv(warp)


def carry(points: torch.Tensor, warp):
    """(B,N,2) pixels of one view -> their positions in the other view, and
    (B,N) bool where the dense warp sees them there (None for homographies:
    the masks decide). A dense warp is read bilinearly; a point is seen when
    every pixel of A around it that the bilinear read weighs is seen."""
    if not isinstance(warp, DenseWarp):
        return apply_homographies(points, warp), None
    _, height, width, _ = warp.flow_ab.shape
    grid = normalized_grid(points, width, height)[:, :, None, :]
    flow = F.grid_sample(warp.flow_ab.permute(0, 3, 1, 2), grid, mode="bilinear",
                         padding_mode="border", align_corners=False)[..., 0].transpose(1, 2)
    seen = F.grid_sample(warp.valid_ab[:, None].float(), grid, mode="bilinear",
                         padding_mode="zeros", align_corners=False)[:, 0, :, 0]
    x, y = points[..., 0], points[..., 1]
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    return flow, inside & (seen > 1.0 - 1e-4)


def _and(valid: torch.Tensor, seen) -> torch.Tensor:
    return valid if seen is None else valid & seen


def point_is_valid(points: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,N,2) pixels inside the image and on mask (B,H,W) -> (B,N) bool."""
    _, height, width = mask.shape
    x = points[..., 0].round().long()
    y = points[..., 1].round().long()
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    xc, yc = x.clamp(0, width - 1), y.clamp(0, height - 1)
    batch = torch.arange(mask.shape[0], device=mask.device)[:, None].expand_as(x)
    return inside & (mask[batch, yc, xc] > 0)


def local_maxima(score_map: torch.Tensor, radius: int) -> torch.Tensor:
    """(B,1,H,W) -> bool: pixels equal to the maximum of their (2r+1)^2 window
    (the max-pool NMS of detection.py)."""
    return score_map == F.max_pool2d(score_map, 2 * radius + 1, stride=1, padding=radius)


def teacher_keypoints(score_map: torch.Tensor, k: int, radius: int = 2) -> torch.Tensor:
    """(B,1,H,W) -> (B,1,H,W) {0,1}: the top-k NMS peaks of a score map."""
    peaks = local_maxima(score_map, radius) & (score_map > 1e-4)
    flat = (score_map * peaks).flatten(1)
    k = min(k, flat.shape[1])
    top = flat.topk(k, dim=1)
    target = torch.zeros_like(flat)
    target.scatter_(1, top.indices, (top.values > 0).float())
    return target.view_as(score_map)


def warp_map(values: torch.Tensor, h_ab: torch.Tensor, mask_a, mask_b):
    """(B,C,H,W) maps of view B resampled into view A's pixels through H_ab
    (A pixel p reads B at H_ab p); returns them and (B,1,H,W) validity."""
    batch, _, height, width = values.shape
    ys, xs = torch.meshgrid(torch.arange(height, device=values.device, dtype=torch.float32),
                            torch.arange(width, device=values.device, dtype=torch.float32),
                            indexing="ij")
    grid_a = torch.stack([xs, ys], -1).view(1, -1, 2).expand(batch, -1, -1)
    grid_b, seen = carry(grid_a, h_ab)
    valid = _and(point_is_valid(grid_a, mask_a) & point_is_valid(grid_b, mask_b), seen).float()
    warped = F.grid_sample(values, normalized_grid(grid_b, width, height).view(batch, height, width, 2),
                           mode="bilinear", padding_mode="zeros", align_corners=False)
    return warped, valid.view(batch, 1, height, width)


def fuse_teacher_scores(scores_a, scores_b, h_ab, mask_a, mask_b):
    """Each view's teacher score map averaged with the other view's warped onto
    it (where both see the scene): the detector targets then mark the same
    scene points in both views, however blurred or dark one of them is."""
    b_in_a, valid_a = warp_map(scores_b, h_ab, mask_a, mask_b)
    a_in_b, valid_b = warp_map(scores_a, invert(h_ab), mask_b, mask_a)
    fused_a = torch.where(valid_a > 0, 0.5 * (scores_a + b_in_a), scores_a)
    fused_b = torch.where(valid_b > 0, 0.5 * (scores_b + a_in_b), scores_b)
    return fused_a, fused_b


def correspondences(desc_a, desc_b, points_a, h_ab, mask_a, mask_b, image_wh):
    """Points of A, their true positions in B (B,N,2), whether both lie on
    real content (B,N), and the student's unit descriptors at them (B,N,D)."""
    points_b, seen = carry(points_a, h_ab)
    valid = _and(point_is_valid(points_a, mask_a) & point_is_valid(points_b, mask_b), seen)
    da = F.normalize(sample_map(desc_a, points_a, image_wh), dim=-1)
    db = F.normalize(sample_map(desc_b, points_b, image_wh), dim=-1)
    return points_b, valid, da, db


def descriptor_contrastive(desc_a, desc_b, points_a, h_ab, mask_a, mask_b, image_wh,
                           inverse_temperature: float = 20.0, exclusion_px: float = 4.0):
    points_b, valid, da, db = correspondences(desc_a, desc_b, points_a, h_ab, mask_a, mask_b,
                                              image_wh)
    losses, accuracies = [], []
    for i in range(points_a.shape[0]):
        keep = valid[i]
        if keep.sum() < 8:
            continue
        a, b, pb = da[i, keep], db[i, keep], points_b[i, keep]
        logits = inverse_temperature * (a @ b.T)
        near = torch.cdist(pb, pb) < exclusion_px
        near.fill_diagonal_(False)
        logits = logits.masked_fill(near, float("-inf"))
        target = torch.arange(len(a), device=a.device)
        losses.append(0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)))
        accuracies.append((logits.argmax(1) == target).float().mean())
    if not losses:
        zero = desc_a.sum() * 0.0
        return zero, zero
    return torch.stack(losses).mean(), torch.stack(accuracies).mean()


def descriptor_distill(desc_student_raw, desc_teacher_unit):
    return (1.0 - (F.normalize(desc_student_raw, dim=1) * desc_teacher_unit).sum(1)).mean()


def similarity_distill(desc_a, desc_b, teacher_a, teacher_b, points_a, h_ab, mask_a, mask_b,
                       image_wh, inverse_temperature: float = 20.0, exclusion_px: float = 4.0):
    """desc_a/b: the student's raw descriptor maps (B,D,h,w); teacher_a/b:
    the teacher's unit descriptors (B,N,D') at points_a and at H_ab(points_a)."""
    points_b, valid, da, db = correspondences(desc_a, desc_b, points_a, h_ab, mask_a, mask_b,
                                              image_wh)
    row_losses, rows = [], 0
    for i in range(points_a.shape[0]):
        keep = valid[i]
        if keep.sum() < 8:
            continue
        student = inverse_temperature * (da[i, keep] @ db[i, keep].T)
        teacher = inverse_temperature * (teacher_a[i, keep] @ teacher_b[i, keep].T)
        pa, pb = points_a[i, keep], points_b[i, keep]
        for s, t, where in ((student, teacher, pb), (student.T, teacher.T, pa)):
            right = (where[t.argmax(1)] - where).norm(dim=1) < exclusion_px
            if right.any():
                kl = F.kl_div(F.log_softmax(s[right], dim=1), F.log_softmax(t[right], dim=1),
                              log_target=True, reduction="sum")
                row_losses.append(kl)
                rows += int(right.sum())
    if not rows:
        return desc_a.sum() * 0.0
    return torch.stack(row_losses).sum() / rows


def detector_distill(logits, target, positive_weight: float = 20.0):
    weight = 1.0 + (positive_weight - 1.0) * target
    return F.binary_cross_entropy_with_logits(logits, target, weight=weight)


def repeatability(logits_a, logits_b, h_ab, mask_a, mask_b):
    prob_b_in_a, valid = warp_map(torch.sigmoid(logits_b), h_ab, mask_a, mask_b)
    diff = (torch.sigmoid(logits_a) - prob_b_in_a).abs()
    return (diff * valid).sum() / valid.sum().clamp(min=1.0)


def _soft_argmax_at(prob: torch.Tensor, centres: torch.Tensor, radius: int,
                    temperature: float) -> torch.Tensor:
    """(B,1,H,W) probabilities, (B,N,2) integer pixel centres (long) ->
    (B,N,2) soft-argmax positions in the (2r+1)^2 windows around them, as
    detection.soft_argmax_offsets computes them at run time (differentiable),
    and (B,N) dispersions: the softmax-weighted mean distance (pixels) of the
    window's pixels from that position (small when the peak is sharp)."""
    padded = F.pad(prob[:, 0], (radius, radius, radius, radius))        # (B, H+2r, W+2r)
    width = padded.shape[-1]
    offsets = torch.arange(-radius, radius + 1, device=prob.device)
    dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
    rows = centres[..., 1:2] + radius + dy.reshape(1, 1, -1)           # (B, N, size^2)
    cols = centres[..., 0:1] + radius + dx.reshape(1, 1, -1)
    window = padded.flatten(1).gather(1, (rows * width + cols).flatten(1)).view(rows.shape)
    dx, dy = dx.to(prob.dtype), dy.to(prob.dtype)
    weights = torch.softmax(window / temperature, dim=-1)
    offset = torch.stack([weights @ dx.reshape(-1), weights @ dy.reshape(-1)], -1)
    spread = torch.stack([dx.reshape(-1), dy.reshape(-1)], -1)         # (size^2, 2)
    dispersion = (weights * (spread[None, None] - offset[..., None, :]).norm(dim=-1)).sum(-1)
    return centres.to(prob.dtype) + offset, dispersion


def _peaks(prob: torch.Tensor, k: int, radius: int) -> torch.Tensor:
    """(B,1,H,W) -> (B,k,2) long x, y of the top-k NMS maxima (no gradient),
    at least radius + 1 pixels from the border."""
    prob = prob.detach()
    peaks = local_maxima(prob, radius).float() * prob
    margin = radius + 1
    peaks[..., :margin, :] = 0
    peaks[..., -margin:, :] = 0
    peaks[..., :, :margin] = 0
    peaks[..., :, -margin:] = 0
    width = prob.shape[-1]
    top = peaks.flatten(1).topk(min(k, peaks[0].numel()), dim=1).indices
    return torch.stack([top % width, top // width], -1)


def peak_reprojection(logits_a, logits_b, h_ab, mask_a, mask_b, k: int = 256,
                      radius: int = 2, temperature: float = 0.1, max_error: float = 4.0):
    """Mean distance (pixels) between a refined peak carried into the other
    view and the refined position found there, plus the peak's dispersion
    (ALIKE's dispersity peak loss); both directions. Without the dispersion
    the cheapest answer is a flat map: a soft-argmax over a flat window sits
    at the pixel centre, off by only the rounding of the carried point."""
    prob_a, prob_b = torch.sigmoid(logits_a), torch.sigmoid(logits_b)
    height, width = prob_a.shape[-2:]
    errors = []
    for prob_src, prob_dst, h, m_src, m_dst in ((prob_a, prob_b, h_ab, mask_a, mask_b),
                                                (prob_b, prob_a, invert(h_ab), mask_b, mask_a)):
        centres = _peaks(prob_src, k, radius)
        refined, dispersion = _soft_argmax_at(prob_src, centres, radius, temperature)
        carried, seen = carry(refined, h)
        anchor = carried.detach().round().long()
        inside = ((anchor[..., 0] > radius) & (anchor[..., 0] < width - radius - 1)
                  & (anchor[..., 1] > radius) & (anchor[..., 1] < height - radius - 1))
        valid = _and(inside & point_is_valid(centres.float(), m_src)
                     & point_is_valid(carried.detach(), m_dst), seen)
        anchor[..., 0] = anchor[..., 0].clamp(0, width - 1)
        anchor[..., 1] = anchor[..., 1].clamp(0, height - 1)
        found, _ = _soft_argmax_at(prob_dst, anchor, radius, temperature)
        error = (carried - found).norm(dim=-1).clamp(max=max_error)
        errors.append((error + dispersion)[valid])
    error = torch.cat(errors)
    return error.mean() if error.numel() else logits_a.sum() * 0.0
