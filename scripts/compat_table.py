"""The README's compatibility table: convert a list of models and say what became of each.

    PYTHONPATH=. .venv/bin/python scripts/compat_table.py [--only NAME ...] [--out DIR]

Each model goes through ``oakpipe convert`` (every stage, verify included) at its input
size; the table gives family, task, input, result (verified blob / verification failed /
refused, naming the op / rewrites applied), blob size and GMAC. Models are built offline,
with random weights (no downloads here): Ultralytics YAMLs with BatchNorm recalibrated on
photos (tests/fixtures/ultralytics_models.py), torchvision and timm model definitions
(``weights=None`` / ``pretrained=False``, BatchNorm recalibrated the same way; timm rows need
``pip install timm``), the ``--task`` test models of tests/fixtures/task_models.py and the
architecture probes of tests/fixtures/verdict_models.py. torchvision is imported after the
test set-up's operator shim (tests/fixtures/torchvision_shim.py: this machine's torchvision
wheel is a CUDA build whose C ops fail with the CPU torch; never part of the product).
Needs the toolchain; takes minutes (each YOLO about a minute on two cores).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from oakpipe.errors import OakpipeError  # noqa: E402
from tests.fixtures import ssd_models  # noqa: E402


class MissingPackage(Exception):
    """A row's model definitions come from a package that is not installed."""


@dataclass(frozen=True)
class Entry:
    name: str
    family: str
    size: int
    build: Callable[[Path], object]  # folder -> an nn.Module or a model spec (a best.pt path)
    task: str | None = None  # --task for a model that does not say


def ultralytics(yaml: str, size: int) -> Callable[[Path], object]:
    def build(folder: Path) -> str:
        from tests.fixtures.ultralytics_models import make_checkpoint

        return str(make_checkpoint(yaml, folder / Path(yaml).stem / "best.pt", size=size))

    return build


def calibrated(factory: Callable[[], nn.Module], size: int) -> Callable[[Path], nn.Module]:
    """BatchNorm statistics from photos, as the Ultralytics models get (random weights otherwise)."""

    def build(_folder: Path) -> nn.Module:
        from tests.fixtures.ultralytics_models import recalibrate_batchnorm

        module = factory()
        recalibrate_batchnorm(module, size)
        return module.eval()

    return build


def verdict_model(name: str) -> Callable[[Path], nn.Module]:
    def build(_folder: Path) -> nn.Module:
        from tests.fixtures import verdict_models

        return getattr(verdict_models, name)().eval()

    return build


def task_model(name: str) -> Callable[[Path], nn.Module]:
    def build(_folder: Path) -> nn.Module:
        from tests.fixtures import task_models

        return getattr(task_models, name)().eval()

    return build


def torchvision_model(name: str, **kwargs) -> Callable[[], nn.Module]:
    """A torchvision model definition, random weights (``weights=None``: nothing downloaded)."""

    def factory() -> nn.Module:
        import torch
        import torchvision

        torch.manual_seed(0)
        return getattr(torchvision.models.segmentation if "deeplab" in name or "lraspp" in name
                       else torchvision.models, name)(weights=None, **kwargs)

    return factory


def timm_model(name: str) -> Callable[[], nn.Module]:
    """A timm model definition, random weights (``pretrained=False``); needs ``pip install timm``."""

    def factory() -> nn.Module:
        import torch

        try:
            import timm
        except ImportError as exc:
            raise MissingPackage("not run: timm is not installed (pip install timm)") from exc
        torch.manual_seed(0)
        return timm.create_model(name, pretrained=False)

    return factory


class OutOnly(nn.Module):
    """torchvision's segmenters return {"out": ..., "aux": ...}; the class scores are "out"."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


def segmenter(name: str) -> Callable[[], nn.Module]:
    def factory() -> nn.Module:
        return OutOnly(torchvision_model(name, num_classes=21, weights_backbone=None)())

    return factory


MODELS = [
    Entry("yolov8n", "Ultralytics YOLOv8", 320, ultralytics("yolov8n.yaml", 320)),
    Entry("yolo11n", "Ultralytics YOLO11", 320, ultralytics("yolo11n.yaml", 320)),
    Entry("yolov10n", "Ultralytics YOLOv10 (NMS-free)", 320, ultralytics("yolov10n.yaml", 320)),
    Entry("yolo26n", "Ultralytics YOLO26 (NMS-free)", 320, ultralytics("yolo26n.yaml", 320)),
    Entry("yolo26n-pose", "Ultralytics YOLO26 (NMS-free)", 320, ultralytics("yolo26n-pose.yaml", 320)),
    Entry("yolo26n-seg", "Ultralytics YOLO26 (NMS-free)", 320, ultralytics("yolo26n-seg.yaml", 320)),
    Entry("yolo11n-seg", "Ultralytics YOLO11", 320, ultralytics("yolo11n-seg.yaml", 320)),
    Entry("yolo11n-pose", "Ultralytics YOLO11", 320, ultralytics("yolo11n-pose.yaml", 320)),
    Entry("yolo11n-cls", "Ultralytics YOLO11", 224, ultralytics("yolo11n-cls.yaml", 224)),
    Entry("yolov8n-seg", "Ultralytics YOLOv8", 320, ultralytics("yolov8n-seg.yaml", 320)),
    Entry("yolov8n-pose", "Ultralytics YOLOv8", 320, ultralytics("yolov8n-pose.yaml", 320)),
    Entry("yolov8n-cls", "Ultralytics YOLOv8", 224, ultralytics("yolov8n-cls.yaml", 224)),
    Entry("resnet18", "torchvision", 224, calibrated(torchvision_model("resnet18"), 224), task="classify"),
    Entry("mobilenet_v3_small", "torchvision", 224, calibrated(torchvision_model("mobilenet_v3_small"), 224),
          task="classify"),
    Entry("mobilenet_v3_large", "torchvision", 224, calibrated(torchvision_model("mobilenet_v3_large"), 224),
          task="classify"),
    Entry("squeezenet1_1", "torchvision", 224, calibrated(torchvision_model("squeezenet1_1"), 224), task="classify"),
    Entry("regnet_x_400mf", "torchvision", 224, calibrated(torchvision_model("regnet_x_400mf"), 224),
          task="classify"),
    Entry("efficientnet_b0", "torchvision", 224, calibrated(torchvision_model("efficientnet_b0"), 224),
          task="classify"),
    Entry("shufflenet_v2_x1_0", "torchvision", 224, calibrated(torchvision_model("shufflenet_v2_x1_0"), 224),
          task="classify"),
    Entry("lraspp_mobilenet_v3_large", "torchvision", 256, calibrated(segmenter("lraspp_mobilenet_v3_large"), 256),
          task="segment-semantic"),
    Entry("ssdlite320_mobilenet_v3_large", "torchvision", 320, lambda _folder: ssd_models.calibrated_ssdlite()),
    Entry("ssd300_vgg16", "torchvision", 300, lambda _folder: ssd_models.ssd300_vgg16()),
    Entry("mobilenetv4_conv_small", "timm", 224, calibrated(timm_model("mobilenetv4_conv_small"), 224),
          task="classify"),
    Entry("lcnet_050", "timm", 224, calibrated(timm_model("lcnet_050"), 224), task="classify"),
    Entry("ghostnet_100", "timm", 224, calibrated(timm_model("ghostnet_100"), 224), task="classify"),
    Entry("efficientvit_b0", "timm", 224, calibrated(timm_model("efficientvit_b0"), 224), task="classify"),
    Entry("fastvit_t8", "timm", 256, calibrated(timm_model("fastvit_t8"), 256), task="classify"),
    Entry("TinySegmenter", "1x1 conv class scores", 64, task_model("TinySegmenter"), task="segment-semantic"),
    Entry("TinyDepth", "1x1 conv map", 64, task_model("TinyDepth"), task="depth"),
    Entry("TinyViT (2 blocks)", "ViT", 32, verdict_model("TinyViT")),
    Entry("LayerNormHead", "probe: LayerNorm on a rank-2 vector", 32, verdict_model("LayerNormHead")),
    Entry("Unfold", "probe: patch unfold", 32, verdict_model("Unfold")),
    Entry("TokenLayerNorm", "probe: LayerNorm on (1, N, C) tokens", 32, verdict_model("TokenLayerNorm")),
    Entry("UnflattenHeads", "probe: attention heads unflattened", 32, verdict_model("UnflattenHeads")),
]


def convert_one(entry: Entry, folder: Path) -> dict:
    from oakpipe import api
    from oakpipe.errors import VerificationError

    try:
        model = entry.build(folder)
    except MissingPackage as exc:
        return {"task": entry.task or "-", "result": str(exc), "blob": "-", "gmac": "-"}
    options = {"input_shape": (1, 3, entry.size, entry.size), "out": folder / f"{entry.name.split()[0]}_export"}
    if entry.task:
        options["task"] = entry.task
    row = {"task": entry.task or "-", "result": "", "blob": "-", "gmac": "-"}
    try:
        export = api.convert(model, **options)
        row["result"] = "verified blob"
    except VerificationError as exc:
        row["result"] = f"blob; verification failed ({exc.message[:80]})"
        export = None
    except OakpipeError as exc:
        return {**row, "result": f"refused: {exc.message.split(': Failed')[0][:200]}"}
    folder_ = export.folder if export is not None else options["out"]
    return {**row, **facts(folder_, row)}


def facts(folder: Path, row: dict) -> dict:
    import json

    manifest = json.loads((folder / "manifest.json").read_text())
    stages = manifest["stages"]
    task = (stages["onnx"].get("info", {}).get("task") or {}).get("task") or row["task"]
    rewrites = stages.get("device", {}).get("info", {}).get("rewrites") or {}
    result = row["result"] + (f"; rewrites: {', '.join(f'{k} x{v}' for k, v in rewrites.items())}" if rewrites else "")
    blob = next((folder / n for n in stages.get("blob", {}).get("artifacts", {}) if n.endswith(".blob")), None)
    preflight = stages.get("blob", {}).get("info", {}).get("preflight") or {}
    gmac = preflight.get("estimates", {}).get("gmac")
    return {"task": task, "result": result, "blob": size_text(blob.stat().st_size) if blob else "-",
            "gmac": f"{gmac:.3g}" if gmac is not None else "-"}


def size_text(size: int) -> str:
    return f"{size / 2**20:.2f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="model names to run (default: all)")
    parser.add_argument("--out", type=Path, help="folder for the exports (default: a temporary one)")
    args = parser.parse_args()
    from tests.fixtures import torchvision_shim

    torchvision_shim.install()  # Ultralytics imports torchvision; see the fixture's docstring
    chosen = [m for m in MODELS if not args.only or m.name in args.only]
    with tempfile.TemporaryDirectory() as temp:
        folder = args.out or Path(temp)
        print("| model | family | task | input | result | blob | GMAC |")
        print("|---|---|---|---|---|---|---|")
        for entry in chosen:
            with contextlib.redirect_stdout(sys.stderr):  # Ultralytics prints model summaries
                row = convert_one(entry, folder)
            print(f"| {entry.name} | {entry.family} | {row['task']} | {entry.size}x{entry.size} | {row['result']} | "
                  f"{row['blob']} | {row['gmac']} |", flush=True)


if __name__ == "__main__":
    main()
