"""A model made for the benchmark: enough compute that the host pipeline's overhead has to
hide behind inference (issue 3's goal is set for a CNN of at least 1 GMAC at 256x256)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class BenchCNN(nn.Module):
    """Stride-2 stem, two 3x3 convs at 64 channels on 128x128, 1x1 head, upsample back:
    (1, 3, 256, 256) -> (1, 3, 256, 256), about 1.24 GMAC."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(
            nn.Conv2d(3, 64, 3, stride=2, padding=1), nn.ReLU(),  # (1, 64, 128, 128)
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
            nn.Conv2d(64, 3, 1), nn.Sigmoid(),  # (1, 3, 128, 128)
            nn.Upsample(scale_factor=2, mode="nearest"),  # (1, 3, 256, 256)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Bottleneck(nn.Module):
    """ResNet's v1.5 bottleneck (stride on the 3x3), as torchvision builds it."""

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = 4 * width
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet50(nn.Module):
    """torchvision's resnet50 layer for layer (25.6 M parameters, 4.1 GMAC at 224x224), built
    here because torchvision's PyPI wheel does not import beside a CPU-only torch. Random
    weights: a convert's cost does not depend on their values."""

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64)
        self.relu, self.maxpool = nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
        blocks, cin = [], 64
        for width, count, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            layer = []
            for i in range(count):
                layer.append(Bottleneck(cin, width, stride if i == 0 else 1))
                cin = 4 * width
            blocks.append(nn.Sequential(*layer))
        self.layer1, self.layer2, self.layer3, self.layer4 = blocks
        self.avgpool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(2048, classes)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


YOLOV8N_SOURCE = '''"""YOLOv8n from Ultralytics' own YAML, random weights, the head's raw maps as outputs."""
from ultralytics.nn.tasks import DetectionModel


def yolov8n():
    model = DetectionModel("yolov8n.yaml", verbose=False).eval()
    head = model.model[-1]
    head.export, head.format = True, "onnx"  # export mode: no anchors or grid in the forward's Python
    return model
'''


def yolov8n_file(folder: Path) -> Path:
    """A ``file.py`` whose ``yolov8n()`` makes YOLOv8n; ImportError when Ultralytics is absent."""
    import ultralytics  # noqa: F401 (raises here, not in the convert)

    path = folder / "yolov8n_model.py"
    path.write_text(YOLOV8N_SOURCE)
    return path


def recalibrate_batchnorm(model: nn.Module, batch: torch.Tensor) -> None:
    """BatchNorm running statistics replaced by those of ``batch`` (N x 3 x H x W, 0..1; a cumulative
    average over chunks of 4), then eval: random weights get a trained network's activation scale."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the passes
    model.train()
    with torch.no_grad():
        for chunk in batch.split(4):
            model(chunk)
    for m in norms:
        m.momentum = 0.03
    model.eval()
