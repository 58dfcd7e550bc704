"""MODEL as a torchvision SSD or SSDlite detector, cut for RVC2.

torchvision's ``SSD`` (``ssdlite320_mobilenet_v3_large``, ``ssd300_vgg16``) returns, in
eval mode, post-processed detections: a data-dependent number of rows after NMS, which no
MyriadX graph can compute. The export keeps what has a static shape and decodes it in the
graph: backbone and head, then the box coder applied to the model's own anchors (fixed for
a fixed input size, so they are constants of the graph) and the class softmax. The outputs:

- ``boxes`` [1, A, 4]: corners (x1, y1, x2, y2) normalized to [0, 1] and clipped, as
  torchvision clips to the image. Normalized, FP16 (spacing 0.0005 near 1) holds a corner
  to 0.16 px at 320; pixel coordinates would be spaced 0.25 px there and mix with scores.
- ``scores`` [1, A, C]: softmax over the classes, class 0 the background.

Thresholds, top-k candidates and class-aware NMS run on the host, in oakpipe's own parser
(oakpipe.tasks.ssd_parser: depthai-nodes has none for multi-class SSD outputs), with the
model's own ``score_thresh``, ``topk_candidates``, ``nms_thresh`` and ``detections_per_img``.

The model's transform becomes the camera contract: its ``image_mean``/``image_std`` (on
0..1 RGB) times 255. Its resize to ``fixed_size`` is the camera preview's size, so the
input shape must be that size (the anchors are laid out for it). torchvision is already
imported when a model is one of its SSDs; nothing here imports it otherwise.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from torch import nn

from oakpipe.errors import ModelError, UserError
from oakpipe.preprocessing import Preprocessing
from oakpipe.stages.onnx_export import eval_mode
from oakpipe.tasks.heads import SSD_SUBTYPE
from oakpipe.tasks.info import TaskInfo

OUTPUTS = ["boxes", "scores"]
COCO_CLASSES = 91  # torchvision's COCO detection weights: category ids 0..90, 0 the background


def is_torchvision_ssd(module: object) -> bool:
    """True for a torchvision ``SSD`` (SSDlite is one), or a subclass of it; never imports torchvision."""
    ssd = sys.modules.get("torchvision.models.detection.ssd")
    if ssd is None:
        return False
    return isinstance(module, ssd.SSD) or isinstance(module, type) and issubclass(module, ssd.SSD)


def cut_if_ssd(module: nn.Module, input_shape: tuple[int, ...]) -> nn.Module:
    """``module`` unchanged, or, for a torchvision SSD, its RVC2 cut (carrying ``oakpipe_task``
    and ``oakpipe_preprocessing``, read by the convert stages as an Ultralytics model's are)."""
    if not is_torchvision_ssd(module):
        return module
    check_input_size(module, input_shape)
    return SSDExport(module, input_shape)


def check_input_size(detector: Any, input_shape: tuple[int, ...]) -> None:
    """The SSD resizes every image to its transform's ``fixed_size`` and its anchors are laid
    out for that size: the input shape must be it."""
    fixed = getattr(detector.transform, "fixed_size", None)
    if fixed is None:
        raise ModelError(f"{type(detector).__name__}'s transform has no fixed_size, so its anchors have no fixed "
                         "input size", "build the SSD with a fixed size (torchvision's SSD(size=(H, W)))")
    height, width = int(fixed[1]), int(fixed[0])  # torchvision resizes to [fixed[1], fixed[0]] (H, W)
    if tuple(input_shape[2:]) != (height, width):
        raise UserError(
            f"this SSD resizes every image to {width}x{height} and its anchors are laid out for that size; "
            f"--input-shape asks {input_shape[3]}x{input_shape[2]}",
            f"convert with --input-shape {input_shape[0]},3,{height},{width}",
        )


def contract_of(detector: Any) -> Preprocessing:
    """torchvision's normalisation (RGB on 0..1: (x - image_mean) / image_std) on 0..255 values."""
    transform = detector.transform
    mean = tuple(255.0 * float(m) for m in transform.image_mean)
    scale = tuple(255.0 * float(s) for s in transform.image_std)
    return Preprocessing(mean, scale, True)  # type: ignore[arg-type]  # three per channel, as torchvision's


def features_of(backbone: Any, x: torch.Tensor) -> list[torch.Tensor]:
    """The backbone's feature maps as SSD.forward lists them."""
    features = backbone(x)
    return [features] if isinstance(features, torch.Tensor) else list(features.values())


def normalized_anchors(detector: Any, input_shape: tuple[int, ...]) -> torch.Tensor:
    """[A, 4] anchors as (centre x, centre y, width, height) over the input's width and height,
    computed as torchvision's box coder reads its pixel anchors."""
    from torchvision.models.detection.image_list import ImageList

    height, width = int(input_shape[2]), int(input_shape[3])
    images = ImageList(torch.zeros(1, 3, height, width), [(height, width)])
    with torch.no_grad(), eval_mode(detector):  # a model in training mode keeps its BatchNorm statistics
        features = features_of(detector.backbone, images.tensors)
        boxes = detector.anchor_generator(images, features)[0].double()
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    centres = torch.stack([boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights], 1)
    scale = torch.tensor([width, height], dtype=torch.float64)
    return torch.cat([centres / scale, torch.stack([widths, heights], 1) / scale], 1).float()


def class_names(detector: Any, count: int) -> list[str]:
    """The model's own names (``oakpipe_labels``/``class_names``), else COCO's for a 91-class
    head (torchvision's detection weights), else the class ids."""
    from oakpipe.tasks.declared import class_names as declared_names

    names = declared_names(None, detector, count)
    if names != [str(i) for i in range(count)] or count != COCO_CLASSES:
        return names
    try:
        from torchvision.models._meta import _COCO_CATEGORIES  # torchvision's own list for its weights
    except ImportError:
        return names
    return [str(n) for n in _COCO_CATEGORIES] if len(_COCO_CATEGORIES) == count else names


class SSDExport(nn.Module):
    """Backbone, head, anchor decode (normalized corners) and class softmax of a torchvision SSD."""

    backbone: Any  # a torchvision backbone and SSD head: untyped modules
    head: Any
    anchor_xy: torch.Tensor  # buffers, declared for the type checker (nn.Module's getattr is untyped)
    anchor_wh: torch.Tensor
    inverse_xy: torch.Tensor
    inverse_wh: torch.Tensor
    clip: torch.Tensor

    def __init__(self, detector: Any, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.backbone, self.head = detector.backbone, detector.head
        anchors = normalized_anchors(detector, input_shape)
        wx, wy, ww, wh = (float(w) for w in detector.box_coder.weights)
        self.register_buffer("anchor_xy", anchors[None, :, :2].clone())
        self.register_buffer("anchor_wh", anchors[None, :, 2:].clone())
        self.register_buffer("inverse_xy", torch.tensor([1.0 / wx, 1.0 / wy]))
        self.register_buffer("inverse_wh", torch.tensor([1.0 / ww, 1.0 / wh]))
        self.register_buffer("clip", torch.tensor(float(detector.box_coder.bbox_xform_clip)))
        with torch.no_grad(), eval_mode(detector):
            logits = self.head(features_of(self.backbone, torch.zeros(1, *input_shape[1:])))["cls_logits"]
        if logits.shape[1] != anchors.shape[0]:
            raise ModelError(f"the SSD head scores {logits.shape[1]} boxes but the anchor generator makes "
                             f"{anchors.shape[0]}", "check the model's anchor generator against its head")
        names = class_names(detector, int(logits.shape[-1]))
        postprocess = {"conf_threshold": float(detector.score_thresh), "iou_threshold": float(detector.nms_thresh),
                       "max_det": int(detector.detections_per_img), "topk_candidates": int(detector.topk_candidates)}
        self.oakpipe_task = TaskInfo("detect", names, list(OUTPUTS), subtype=SSD_SUBTYPE, postprocess=postprocess,
                                     family=f"torchvision {type(detector).__name__} {len(anchors)} anchors")
        self.oakpipe_preprocessing = contract_of(detector)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.head(features_of(self.backbone, x))
        codes = out["bbox_regression"]  # (dx, dy, dw, dh) per anchor, scaled by the coder's weights
        centres = codes[..., :2] * self.inverse_xy * self.anchor_wh + self.anchor_xy
        sizes = torch.exp(torch.minimum(codes[..., 2:] * self.inverse_wh, self.clip)) * self.anchor_wh
        half = sizes * 0.5
        boxes = torch.cat([centres - half, centres + half], -1).clamp(0.0, 1.0)
        return {"boxes": boxes, "scores": torch.softmax(out["cls_logits"], -1)}

