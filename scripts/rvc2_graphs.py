"""Build the model graphs of Luxonis' published RVC2 table and store their layer tables.

Run once (needs ultralytics, timm and torchvision, which oakpipe itself does not depend on):

    .venv/bin/python -m pip install --target /tmp/rvc2-site --no-deps ultralytics==8.4.190 \
        ultralytics-thop torchvision==0.29.1 timm==1.0.31 matplotlib psutil tqdm polars \
        polars-runtime-32 pandas pillow cycler kiwisolver pyparsing contourpy fonttools \
        python-dateutil six packaging huggingface_hub safetensors
    PYTHONPATH=$PWD .venv/bin/python scripts/rvc2_graphs.py --site /tmp/rvc2-site --onnx-dir /tmp/rvc2-onnx

(a separate folder, so oakpipe's own environment never imports torchvision). Then
``python -m oakpipe.estimate.calibrate`` refits the constants and prints the table.

Every model is exported with random weights (latency does not depend on weight values) at
the published input size, in inference form (BatchNorm folded, MobileOne re-parameterised,
ultralytics ``fuse()``d). YOLO heads are cut the way RVC2 exports usually are: the raw head
convolutions of each level are the outputs (box and class maps concatenated per level, no
DFL, no decoding, no NMS); YOLOv10 keeps its one-to-one head. The per-layer tables (a few KiB
of JSON each) go to ``benchmarks/rvc2/graphs`` so that tests and ``oakpipe bench`` need none
of these packages.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
YOLO_YAML = {"yolov6": "yolov6{s}.yaml", "yolov8": "yolov8{s}.yaml", "yolov9": "yolov9{s}.yaml",
             "yolov10": "yolov10{s}.yaml", "yolo11": "yolo11{s}.yaml"}


def torchvision_shim() -> None:
    """The PyPI torchvision wheel's C ops do not load with this CPU torch, and its import then
    dies registering fake kernels for ops that do not exist: define their schemas first.
    Script set-up only; oakpipe never imports torchvision."""
    import torch

    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    torchvision_shim.lib = lib  # keep the registration alive


def resnet(depth: int):
    import torchvision

    return getattr(torchvision.models, f"resnet{depth}")(weights=None)


def mobileone_s0():
    import timm
    from timm.utils.model import reparameterize_model

    return reparameterize_model(timm.create_model("mobileone_s0", pretrained=False))


class DeepLabV3MobileNetV2:
    """DeepLab V3 on MobileNetV2 (output stride 8, image-pooling + 1x1 ASPP-lite head, 21
    classes, bilinear upsampling to the input): the TensorFlow model-zoo network that
    OpenVINO's and Luxonis' zoos ship as "DeepLab V3" at 256 and 513. Built on torchvision's
    mobilenet_v2 with the last two stride-2 stages dilated instead. Output stride 16 (2.74
    GMAC at 513, TF's published 2.75B) was tried too: held out, it predicts 58 and 10.9 FPS
    against the published 36.5 and 6.3, so output stride 8 is the more plausible variant."""

    @staticmethod
    def build():
        import torch
        import torchvision
        from torch import nn

        features = torchvision.models.mobilenet_v2(weights=None).features
        for index, block in enumerate(features):
            if index < 7 or not hasattr(block, "conv"):
                continue
            dilation = 2 if index < 14 else 4
            for module in block.modules():
                if isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3):
                    module.stride, module.dilation, module.padding = (1, 1), (dilation, dilation), (dilation, dilation)
        backbone = features[:-1]  # 320 channels, as the TF model (no final 1280 conv)

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.backbone = backbone
                self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(320, 256, 1), nn.BatchNorm2d(256), nn.ReLU())
                self.aspp0 = nn.Sequential(nn.Conv2d(320, 256, 1), nn.BatchNorm2d(256), nn.ReLU())
                self.project = nn.Sequential(nn.Conv2d(512, 256, 1), nn.BatchNorm2d(256), nn.ReLU())
                self.logits = nn.Conv2d(256, 21, 1)

            def forward(self, x):
                size = x.shape[-2:]
                f = self.backbone(x)
                pooled = nn.functional.interpolate(self.pool(f), size=f.shape[-2:], mode="bilinear",
                                                   align_corners=True)
                y = self.logits(self.project(torch.cat([pooled, self.aspp0(f)], 1)))
                return nn.functional.interpolate(y, size=size, mode="bilinear", align_corners=True)

        return Net()


def yolo(family: str, scale: str):
    from torch import nn
    from ultralytics.nn.tasks import DetectionModel

    if family == "yolov6" and scale == "t":
        # YOLOv6-T: the n network at width 0.375 (ultralytics has no t scale; an assumption)
        import yaml
        from ultralytics.utils import ROOT as UROOT

        cfg = yaml.safe_load((UROOT / "cfg/models/v6/yolov6.yaml").read_text())
        cfg["scales"]["t"] = [0.33, 0.375, 1024]
        cfg["scale"] = "t"
        model = DetectionModel(cfg, verbose=False)
    else:
        model = DetectionModel(YOLO_YAML[family].format(s=scale), verbose=False)
    model = model.fuse(verbose=False) if hasattr(model, "fuse") else model
    head = model.model[-1]
    end2end = getattr(head, "one2one_cv2", None) is not None
    box, cls = (head.one2one_cv2, head.one2one_cv3) if end2end else (head.cv2, head.cv3)

    def raw_head(x):
        import torch

        return [torch.cat([box[i](x[i]), cls[i](x[i])], 1) for i in range(head.nl)]

    head.forward = raw_head
    model.eval()

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            return tuple(self.model(x))

    return Wrap()


def build(key: str):
    name, size = key.rsplit("_", 1)
    if name.startswith("resnet"):
        return resnet(int(name[6:])), int(size)
    if name == "mobileone_s0":
        return mobileone_s0(), int(size)
    if name == "deeplabv3":
        return DeepLabV3MobileNetV2.build(), int(size)
    for family in sorted(YOLO_YAML, key=len, reverse=True):
        if name.startswith(family):
            return yolo(family, name[len(family):]), int(size)
    raise KeyError(f"no recipe for {key}")


def export(module, size: int, path: Path) -> None:
    import torch

    module.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        torch.onnx.export(module, (torch.rand(1, 3, size, size),), str(path), opset_version=12, dynamo=False,
                          do_constant_folding=True)
    from oakpipe.stages.onnx_export import slim_in_place

    slim_in_place(path)  # as oakpipe's own export: constants folded, shapes static


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", help="a folder with ultralytics, timm, torchvision (pip --target)")
    parser.add_argument("--onnx-dir", type=Path, default=Path("/tmp/rvc2-onnx"))
    parser.add_argument("--only", nargs="*", help="row keys to build (default: all)")
    parser.add_argument("--tables-only", action="store_true",
                        help="re-read the layer tables from the ONNX files already in --onnx-dir")
    args = parser.parse_args()
    if args.site:
        sys.path.insert(0, args.site)
    torchvision_shim()
    from oakpipe.estimate.layers import save_table, table_of_onnx

    published = json.loads((ROOT / "benchmarks/rvc2/published.json").read_text())
    out = ROOT / "benchmarks/rvc2/graphs"
    out.mkdir(parents=True, exist_ok=True)
    args.onnx_dir.mkdir(parents=True, exist_ok=True)
    for row in published["rows"]:
        key = row["key"]
        if args.only and key not in args.only:
            continue
        path, size = args.onnx_dir / f"{key}.onnx", row["input"]
        if not args.tables_only:
            try:
                module, size = build(key)
            except KeyError as exc:
                print(f"skip {key}: {exc}")
                continue
            export(module, size, path)
        if not path.exists():
            continue
        table = table_of_onnx(path, source=f"{row['model']} at {size}x{size}, scripts/rvc2_graphs.py")
        save_table(table, out / f"{key}.json")
        print(f"{key}: {len(table.layers)} layers, {sum(x.macs for x in table.layers) / 1e9:.2f} GMAC", flush=True)


if __name__ == "__main__":
    main()
