"""EdgePoint network (PyTorch), exactly as released by its authors.

Training, ONNX export and the PyTorch reference runtime use this module; the
nodes never import it (they run the exported ONNX graph).

Architecture (released configuration, 87,337 parameters; see
docs: shared/docs/edgepoint-architecture.md):

    image (N,3,H,W) RGB in [0,1], H and W multiples of 32
    block1  conv3x3-BN-ReLU x2, 3->8            x1 at H
    maxpool 2  -> block2 residual 8->16         x2 at H/2
    maxpool 4  -> block3 residual 16->32        x3 at H/8
    maxpool 4  -> block4 residual 32->64        x4 at H/32
    conv1..4: 1x1 (no bias) to 16 channels + ReLU on each level
    level 1 -> H/8 by 1x1 conv stride 8, level 2 by 1x1 conv stride 4,
    level 4 -> H/8 by 4x4 transposed conv stride 4
    descriptor map = convhead2(concat(l1, l2, l3, l4))   64 ch at H/8 (raw)
    score logits   = conv_score(relu(conv1(x1)))        1 ch at H

The family (`SIZES`): the released widths with the stem at H ("medium", the
released configuration above), at H/2 ("small": the stem's first conv has
stride 2) or at H/4 ("tiny": the stem's first conv is a 4x4 stride-4
"patchify" conv that turns each 4x4 pixel cell into one vector). No
multi-channel tensor is then held at full resolution, which is where the
medium spends most of its time (memory traffic more than FLOPs: 1.39, 0.52
and 0.41 GFLOP per 640x480 frame). The score head of a stem at H/s predicts
the s x s pixels of each cell as s^2 channels, rearranged to H by a pixel
shuffle (SuperPoint's and XFeat's trick at 8x). The pooling between blocks
shrinks so that x3 stays at H/8 and x4 at H/32, and the descriptor map keeps
its width (64) and stride (8): every size has the medium's outputs, so the
medium teaches them map for map (training/teacher.py "edgepoint") and their
training starts from its weights where the shapes agree (`transfer_weights`:
all of them for small, all but the patchify conv for tiny).

`forward` returns (score logits at H, raw descriptor map at H/8), the
released model's outputs; `forward_export` adds the sigmoid and the L2
normalisation so the ONNX graph hands post-processing what it needs.
Parameter names match the released checkpoint, so `load_state_dict(...,
strict=True)` loads `EdgePoint.pt` unchanged.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class EdgePointConfig:
    c1: int = 8
    c2: int = 16
    c3: int = 32
    c4: int = 64
    reduced: int = 16
    dim: int = 64
    stem_stride: int = 1     # 1: stem at full resolution (released); 2: at H/2

    def __post_init__(self):
        if self.stem_stride not in (1, 2, 4):
            raise ValueError(f"stem_stride must be 1, 2 or 4, got {self.stem_stride}")


# The EdgePoint sizes the package ships (weights/edgepoint[-SIZE].pt/.onnx).
SIZES = {
    "tiny": EdgePointConfig(stem_stride=4),
    "small": EdgePointConfig(stem_stride=2),
    "medium": EdgePointConfig(),
}


def size_name(config: EdgePointConfig) -> str:
    """The SIZES name of an architecture; ValueError for one that is none of them."""
    for name, known in SIZES.items():
        if known == config:
            return name
    raise ValueError(f"EdgePoint architecture {config} is none of the sizes {', '.join(SIZES)}")


def size_config(size: str) -> EdgePointConfig:
    if size not in SIZES:
        raise ValueError(f"EdgePoint size must be one of {', '.join(SIZES)}; got {size!r}")
    return SIZES[size]


def _conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False)


class ConvBlock(nn.Module):
    """conv3x3-BN-ReLU, twice (the stem; the first conv may stride)."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        if stride == 4:   # patchify: each 4x4 pixel cell -> one vector, nothing overlooked
            self.conv1 = nn.Conv2d(cin, cout, kernel_size=4, stride=4, bias=False)
        else:
            self.conv1 = nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1,
                                   bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = _conv3x3(cout, cout), nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))


class ResidualBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus a 1x1 (biased) shortcut, then ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1, self.bn1 = _conv3x3(cin, cout), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = _conv3x3(cout, cout), nn.BatchNorm2d(cout)
        self.downsample = nn.Conv2d(cin, cout, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.downsample(x))


class EdgePointNet(nn.Module):
    def __init__(self, config: EdgePointConfig = EdgePointConfig()):
        super().__init__()
        c = config
        self.config = c
        s = c.stem_stride
        # x1 at H/s, x2 at H/2s, x3 at H/8, x4 at H/32
        self.pools = (2, max(1, 4 // s), 4)
        self.block1 = ConvBlock(3, c.c1, stride=s)
        self.block2 = ResidualBlock(c.c1, c.c2)
        self.block3 = ResidualBlock(c.c2, c.c3)
        self.block4 = ResidualBlock(c.c3, c.c4)
        r = c.reduced
        self.conv1 = nn.Conv2d(c.c1, r, 1, bias=False)
        self.conv2 = nn.Conv2d(c.c2, r, 1, bias=False)
        self.conv3 = nn.Conv2d(c.c3, r, 1, bias=False)
        self.conv4 = nn.Conv2d(c.c4, r, 1, bias=False)
        self.conv_8 = nn.Conv2d(r, r, 1, stride=8 // s, bias=True)
        self.conv_4 = nn.Conv2d(r, r, 1, stride=max(1, 4 // s), bias=True)
        self.conv_transpose_4 = nn.ConvTranspose2d(r, r, 4, stride=4, bias=True)
        self.convhead2 = nn.Conv2d(4 * r, c.dim, 1, bias=False)
        self.conv_score = nn.Conv2d(r, s * s, 1, bias=True)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image (N,3,H,W), H, W multiples of 32 -> (score logits (N,1,H,W),
        raw descriptor map (N,dim,H/8,W/8))."""
        p1, p2, p3 = self.pools
        x1 = self.block1(image)
        x2 = self.block2(F.max_pool2d(x1, p1))
        x3 = self.block3(F.max_pool2d(x2, p2) if p2 > 1 else x2)
        x4 = self.block4(F.max_pool2d(x3, p3))
        r1 = F.relu(self.conv1(x1))
        r2 = F.relu(self.conv2(x2))
        r3 = F.relu(self.conv3(x3))
        r4 = F.relu(self.conv4(x4))
        descriptor_map = self.convhead2(torch.cat(
            [self.conv_8(r1), self.conv_4(r2), r3, self.conv_transpose_4(r4)], dim=1))
        logits = self.conv_score(r1)
        if self.config.stem_stride > 1:
            logits = F.pixel_shuffle(logits, self.config.stem_stride)
        return logits, descriptor_map

    def forward_export(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the ONNX graph computes: (score probability in [0,1] at H,
        unit-length descriptor map at H/8)."""
        logits, descriptor_map = self.forward(image)
        return torch.sigmoid(logits), F.normalize(descriptor_map, p=2, dim=1)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def load_weights(path: str | Path, strict: bool = True) -> EdgePointNet:
    """Build the network and load a checkpoint without executing pickled code.

    Accepts the authors' released state_dict (`EdgePoint.pt`) and our own
    checkpoints (a dict with 'model' holding the state_dict, plus metadata).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"EdgePoint weights not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle with code, wrong format
        raise ValueError(f"cannot load EdgePoint weights {path}: not a safe PyTorch "
                         f"checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
                         ) from exc
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold an EdgePoint state_dict")
    config = EdgePointConfig(**obj["config"]) if isinstance(obj.get("config"), dict) else EdgePointConfig()
    net = EdgePointNet(config)
    try:
        net.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        raise ValueError(f"{path} does not match the EdgePoint architecture: "
                         f"{str(exc).splitlines()[0]} ...") from exc
    return net.eval()


def transfer_weights(source: EdgePointNet, target: EdgePointNet) -> list[str]:
    """Start `target` (another size) from `source`'s weights where they fit:
    every tensor of the same name and shape is copied, and the score head,
    whose s^2 outputs are the s x s pixels of a cell, gets the source's
    single-pixel head in each of them. Returns the names copied; the rest
    keep their initialisation. A smaller size begins as the bigger network
    with a strided stem, which distillation then repairs (the pruning seed
    paper: a pruned network collapses without re-training, recovers with it).
    """
    source_state, target_state = source.state_dict(), target.state_dict()
    copied = []
    for name, tensor in target_state.items():
        value = source_state.get(name)
        if value is None:
            continue
        if value.shape == tensor.shape:
            target_state[name] = value.clone()
        elif name.startswith("conv_score.") and value.shape[0] == 1 \
                and value.shape[1:] == tensor.shape[1:]:
            target_state[name] = value.repeat(tensor.shape[0], *([1] * (value.dim() - 1)))
        else:
            continue
        copied.append(name)
    target.load_state_dict(target_state)
    return copied


def save_checkpoint(net: EdgePointNet, path: str | Path, **metadata) -> None:
    """Our checkpoint format: tensors + plain metadata (loads with weights_only=True)."""
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}  # loads without a GPU
    torch.save({"model": state, "config": asdict(net.config), **metadata}, path)


class ExportWrapper(nn.Module):
    """The network with `forward_export` as its forward: what the ONNX graph
    computes (exported, and run by the torch reference runtime)."""

    def __init__(self, net: EdgePointNet):
        super().__init__()
        self.net = net

    def forward(self, image):
        return self.net.forward_export(image)


def export_onnx(weights: str | Path | None, out_path: str | Path, opset: int = 17,
                net: EdgePointNet | None = None) -> Path:
    """Export to ONNX: input `image` (N,3,H,W) float32 RGB [0,1], H and W
    dynamic multiples of 32; outputs `scores` (N,1,H,W) probabilities and
    `descriptors` (N,dim,H/8,W/8) unit-length. Exports `net`, or the network
    loaded from `weights`."""
    if net is None:
        if weights is None:
            raise ValueError("export_onnx needs weights (a checkpoint path) or a network")
        net = load_weights(weights)
    # The legacy TorchScript exporter modifies the module it traces (seen with
    # torch 2.13: the caller's network gave different outputs afterwards), so
    # export a copy.
    net = copy.deepcopy(net).eval()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, 3, 480, 640)
    with torch.no_grad():
        torch.onnx.export(
            ExportWrapper(net), (dummy,), str(out_path), opset_version=opset,
            input_names=["image"], output_names=["scores", "descriptors"],
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                          "scores": {0: "batch", 2: "height", 3: "width"},
                          "descriptors": {0: "batch", 2: "height8", 3: "width8"}},
            dynamo=False)
    return out_path
