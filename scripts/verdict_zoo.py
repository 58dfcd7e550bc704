"""Preflight verdict against the whole-model compile, per model: does the preflight say what
the MYRIAD compiler does? Models are built by hand (random weights, no downloads): the test
fixtures of tests/fixtures/verdict_models.py and hand-written ResNet-50 and ConvNeXt-Tiny.

    PYTHONPATH=. .venv/bin/python scripts/verdict_zoo.py [--only NAME ...]

Prints a markdown table: model, input, preflight verdict (with probes and seconds), whole
compile verdict (with seconds), and whether they agree. Needs the toolchain; slow (the
ConvNeXt compile takes minutes on two cores).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from oakpipe.errors import OakpipeError  # noqa: E402
from oakpipe.options import ConvertOptions  # noqa: E402
from oakpipe.preprocessing import Preprocessing  # noqa: E402
from oakpipe.stages.device_graph import build_device_graph  # noqa: E402
from oakpipe.stages.onnx_export import export_torch  # noqa: E402
from oakpipe.toolchain import compile_onnx_to_blob  # noqa: E402
from oakpipe.verify import preflight as pf  # noqa: E402
from tests.fixtures import verdict_models  # noqa: E402


class Bottleneck(nn.Module):
    """torchvision's ResNet-50 block (1x1, 3x3, 1x1 with BatchNorm, projection shortcut)."""

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * 4
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class ResNet50(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], 64
        for width, depth, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            for i in range(depth):
                blocks.append(Bottleneck(cin, width, stride if i == 0 else 1))
                cin = width * 4
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(2048, 1000)

    def forward(self, x):
        return self.fc(self.layers(self.stem(x)).mean((2, 3)))


class LayerNorm2d(nn.LayerNorm):
    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class CNBlock(nn.Module):
    """torchvision's ConvNeXt block: depthwise 7x7, LayerNorm and MLP channels-last, layer scale."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pw1, self.pw2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), 1e-6))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pw2(F.gelu(self.pw1(self.norm(y)))).permute(0, 3, 1, 2)
        return x + self.layer_scale * y


class ConvNeXtTiny(nn.Module):
    """torchvision's convnext_tiny layout; ``rank2_head`` puts the last LayerNorm on the pooled
    (1, 768) vector instead of torchvision's (1, 768, 1, 1)."""

    def __init__(self, rank2_head: bool = False, depths=(3, 3, 9, 3), dims=(96, 192, 384, 768)) -> None:
        super().__init__()
        layers = [nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4), LayerNorm2d(dims[0]))]
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            layers.append(nn.Sequential(*[CNBlock(dim) for _ in range(depth)]))
            if i < 3:
                layers.append(nn.Sequential(LayerNorm2d(dim), nn.Conv2d(dim, dims[i + 1], 2, stride=2)))
        self.features = nn.Sequential(*layers)
        self.rank2_head = rank2_head
        self.norm = nn.LayerNorm(dims[-1]) if rank2_head else LayerNorm2d(dims[-1])
        self.head = nn.Linear(dims[-1], 1000)

    def forward(self, x):
        pooled = self.features(x).mean((2, 3), keepdim=not self.rank2_head)
        return self.head(self.norm(pooled).flatten(1))


ZOO = {  # name -> (builder, input size)
    "Unfold": (verdict_models.Unfold, 32),
    "TokenLayerNorm": (verdict_models.TokenLayerNorm, 32),
    "LayerNormHead": (verdict_models.LayerNormHead, 32),
    "ChannelsLastMLP": (verdict_models.ChannelsLastMLP, 32),
    "UnflattenHeads": (verdict_models.UnflattenHeads, 64),
    "TinyViT": (verdict_models.TinyViT, 64),
    "DictPooledBatchNorm": (verdict_models.DictPooledBatchNorm, 64),
    "ResNet50": (ResNet50, 224),
    "ConvNeXtTiny": (ConvNeXtTiny, 224),
    "ConvNeXtTiny, rank-2 head": (lambda: ConvNeXtTiny(rank2_head=True), 224),
}


def judge(name: str, build, size: int, folder: Path) -> str:
    torch.manual_seed(0)
    shape = (1, 3, size, size)
    export_torch(build().eval(), ConvertOptions(model="halve", input_shape=shape), folder / "m.onnx")
    build_device_graph(folder / "m.onnx", Preprocessing(), folder / "d.onnx")
    started = time.perf_counter()
    try:
        report = pf.preflight(folder / "d.onnx", use_cache=False)
        verdict = "passes" if report.ok else f"rejects {report.problems[0].op_type} ({report.problems[0].module})"
        verdict += f", {report.stats.probes} probes / {report.stats.nodes} nodes"
        ok = report.ok
    except OakpipeError as exc:
        verdict, ok = f"error: {exc.message[:80]}", None
    preflight_s = time.perf_counter() - started
    started = time.perf_counter()
    try:
        whole = compile_onnx_to_blob(folder / "d.onnx", folder / "b.blob", 6)
        compiled = "compiles" if whole["ok"] else "rejected"
        whole_ok = whole["ok"]
    except OakpipeError as exc:
        compiled, whole_ok = f"error: {exc.message[:60]}", None
    compile_s = time.perf_counter() - started
    agree = "yes" if ok is not None and ok == whole_ok else "NO"
    return (f"| {name} | {size}x{size} | {verdict} ({preflight_s:.1f} s) | {compiled} ({compile_s:.1f} s) "
            f"| {agree} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="model names (default: all)")
    args = parser.parse_args()
    print("| model | input | preflight (cold) | whole compile | agree |")
    print("|---|---|---|---|---|")
    for name, (build, size) in ZOO.items():
        if args.only and name not in args.only:
            continue
        with tempfile.TemporaryDirectory(prefix="oakpipe-zoo-") as folder:
            print(judge(name, build, size, Path(folder)), flush=True)


if __name__ == "__main__":
    main()
