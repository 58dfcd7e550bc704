"""MODEL as an Ultralytics checkpoint (``best.pt``) or YAML (``yolo11n.yaml``), cut for RVC2.

Loading: a ``best.pt`` is a pickle of Ultralytics' classes. It is read with Ultralytics'
own restricted loader (``torch_safe_load(..., safe_only=True)``: ``torch.load`` with
``weights_only=True`` and an allow-list of Ultralytics' and torch's model classes), so a
file holding any other class is refused rather than executed. Ultralytics is imported only
when the user passes such a file.

Export: the head is cut where Luxonis' own tools cut it for RVC2. The blob computes, per
stride, the DFL box distances, the sigmoid class scores and their maximum; the grid/stride
box decode, thresholding and NMS run on the host (depthai-nodes' YOLO parser). The MYRIAD
compiler and FP16 handle the decode poorly (pixel coordinates up to the input size beside
scores in [0, 1] in one concatenated tensor, anchor tables folded to constants) and the cut
keeps the blob smaller; the per-stride layout is what depthai-nodes and Luxonis' archives use.

End-to-end (NMS-free) heads, YOLOv10 and YOLO26, carry two branches: one-to-many (trained
for NMS) and one-to-one (trained to give one box per object, no NMS). The export takes the
one-to-one branch, as Luxonis' tools do and as Ultralytics' ``predict(nms=False)`` does,
cut where depthai-nodes' parser for each expects it: YOLOv10 per stride like v8
(``output1_yolov10``..), YOLO26 as one tensor of decoded boxes (``output_yolo26``: per anchor
x1, y1, x2, y2 in input pixels, max score, class scores), since depthai-nodes' ``yolo26``
subtype reads exactly that (and, for pose, ``kpt_output`` with keypoints in pixels; for
segmentation, ``output_masks`` coefficients and ``protos_output``). Box corners up to the
input size sit in FP16 within 0.25 px at 320x320.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from oakpipe.errors import ModelError, UnsupportedModelError, UserError
from oakpipe.tasks.info import TaskInfo
from oakpipe.tasks.labels import read_labels

SUBTYPE = "yolov8"  # depthai-nodes decodes v8, v9, 11 and v5u anchor-free heads alike
V10_SUBTYPE, E2E_SUBTYPE = "yolov10", "yolo26"  # depthai-nodes' subtypes for the one-to-one branches
E2E_OUTPUT = "output_yolo26"  # the one output name depthai-nodes' yolo26 subtype reads
# Heads cut here, by task and exact class (subclasses such as WorldDetect or YOLOEDetect compute
# their outputs differently): CUT_HEADS with their one-to-many branch (the only one left in a
# checkpoint fused for it), E2E_HEADS with their one-to-one branch
CUT_HEADS = {"detect": ("Detect", "v10Detect"), "segment": ("Segment",), "pose": ("Pose",)}
E2E_HEADS = {"detect": ("Detect", "v10Detect"), "segment": ("Segment26",), "pose": ("Pose26",)}


def import_ultralytics():
    try:
        import ultralytics
    except ImportError as exc:
        raise UserError(
            "an Ultralytics checkpoint or YAML needs the ultralytics package",
            "pip install 'oakpipe[ultralytics]' (ultralytics 8.4)",
        ) from exc
    return ultralytics


def load_model(path: Path) -> nn.Module:
    """The Ultralytics model (DetectionModel, ClassificationModel, ...), FP32, eval mode."""
    ultralytics = import_ultralytics()
    if path.suffix.lower() in (".yaml", ".yml"):
        from ultralytics import YOLO

        refuse_transformer_decoder(path)
        try:
            return YOLO(str(path) if path.is_file() else path.name).model.float().eval()  # type: ignore[union-attr]
        except Exception as exc:
            raise UserError(
                f"{path.name} is not a model YAML Ultralytics {ultralytics.__version__} can build ({reason(exc, path)})",
                "pass a model YAML such as yolo11n.yaml (nc:, backbone: and head: lists of Ultralytics modules) "
                "or a best.pt",
            ) from exc
    from ultralytics.nn.tasks import torch_safe_load

    try:
        ckpt, _ = torch_safe_load(str(path), safe_only=True)
    except (ModuleNotFoundError, AttributeError) as exc:  # a class this Ultralytics does not have
        raise UserError(
            f"{path.name} needs {reason(exc)}, which Ultralytics {ultralytics.__version__} lacks: it was saved by "
            "another Ultralytics version (or holds classes outside Ultralytics' model format)",
            "install the Ultralytics version that trained it (pip install -U ultralytics), or export it to ONNX "
            "with that version and pass the .onnx",
        ) from exc
    except Exception as exc:
        raise UserError(
            f"{path.name} cannot be loaded by Ultralytics {ultralytics.__version__}: it is damaged (truncated?), "
            f"from an incompatible version, or holds classes outside Ultralytics' model format ({reason(exc, path)})",
            "pass a checkpoint saved by Ultralytics 8.x (best.pt from `yolo train`), or export it to ONNX",
        ) from exc
    model = ckpt.get("ema") or ckpt.get("model") if isinstance(ckpt, dict) else None
    if not isinstance(model, nn.Module):
        raise UserError(f"{path.name} holds no Ultralytics model", "pass the best.pt that `yolo train` wrote")
    return model.float().eval()


def refuse_transformer_decoder(path: Path) -> None:
    """RT-DETR's YAML (an ``RTDETRDecoder`` head) builds only through Ultralytics' RTDETR class;
    its decoder (deformable attention, top-k query selection) has no RVC2 cut: say so, rather
    than "not a model YAML"."""
    from ultralytics.nn.tasks import yaml_model_load

    try:
        spec = yaml_model_load(str(path) if path.is_file() else path.name)
    except Exception:
        return  # YOLO() below says what is wrong with the file
    layers = [*(spec.get("backbone") or []), *(spec.get("head") or [])]
    if any(isinstance(layer, list) and len(layer) > 2 and layer[2] == "RTDETRDecoder" for layer in layers):
        raise UnsupportedModelError(
            f"{path.name} is an RT-DETR model: its transformer decoder (deformable attention, top-k query "
            "selection) has no RVC2 cut in oakpipe",
            "use a YOLO detector (YOLOv8/11/26), or export it with Ultralytics to ONNX and pass the .onnx "
            "(raw outputs, no decoding)",
        )


def reason(exc: Exception, path: Path | None = None) -> str:
    """An exception as a few words for a one-line message: the missing module, or its type and
    first line without Ultralytics' "ERROR" badge and the full path, shortened."""
    text = str(exc).strip()
    missing = re.search(r"module '([\w.]+)'", text) if isinstance(exc, ModuleNotFoundError) else None
    if isinstance(exc, ModuleNotFoundError) and (exc.name or missing):
        return f"module {exc.name or missing.group(1)}"  # type: ignore[union-attr]
    if isinstance(exc, KeyError):
        return f"KeyError: {exc.args[0] if exc.args else ''}: not a key or module it knows"
    first = re.sub(r"^ERROR[^\w/.]*", "", (text.splitlines() or [""])[0])
    if path is not None:
        first = first.replace(str(path), path.name)
    first = first if len(first) <= 120 else first[:117] + "..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def task_of(model: nn.Module, declared: str | None = None) -> str:
    from ultralytics.nn.tasks import guess_model_task

    task = getattr(model, "task", None) or guess_model_task(model)
    if declared and declared != task:
        raise UserError(f"--task {declared} does not match the checkpoint's task {task}", f"drop --task or use {task}")
    return task


def class_names(model: nn.Module) -> list[str]:
    names = getattr(model, "names", None) or {}
    if isinstance(names, dict):
        return [str(names[i]) for i in sorted(names)]
    return [str(n) for n in names]


def build(path: Path, declared_task: str | None = None, labels: Path | None = None) -> tuple[nn.Module, TaskInfo]:
    """The export-ready module (head cut for RVC2) and what its outputs mean; ``labels``
    (--labels) replaces the checkpoint's class names, one per class of the head."""
    model = load_model(path)
    task = task_of(model, declared_task)
    names = read_labels(labels) if labels is not None else class_names(model)
    family = f"ultralytics {import_ultralytics().__version__} {path.stem}"
    if task == "classify":
        check_class_count(path, names, labels, int(model.model[-1].linear.out_features))  # type: ignore[index, union-attr]
        return ClassifyExport(model), TaskInfo("classify", names, ["output"], family=family)
    if task not in ("detect", "pose", "segment"):
        raise UnsupportedModelError(
            f"Ultralytics {task} models are not exported yet (detect, segment, pose and classify are)",
            "export it with Ultralytics to ONNX and pass the .onnx (raw outputs, no decoding)",
        )
    head: Any = model.model[-1]  # type: ignore[index]  # Ultralytics' modules: untyped attributes
    check_head(head, task, path.name)
    check_class_count(path, names, labels, int(head.nc))
    cut: Any = copy.deepcopy(model)
    strides = [int(s) for s in head.stride.tolist()]
    if has_one_to_one(head):
        return nms_free(cut, head, TaskInfo(task, names, [], strides, family=family))
    outputs = [f"output{i + 1}_yolov8" for i in range(len(strides))]  # depthai-nodes selects "_yolo" layers
    if task == "pose":
        cut.model[-1] = PoseCut(head)
        outputs += [f"kpt_output{i + 1}" for i in range(len(strides))]  # and "kpt_output" layers
        info = TaskInfo("pose", names, outputs, strides, SUBTYPE, n_keypoints=int(head.kpt_shape[0]), family=family)
    elif task == "segment":
        cut.model[-1] = SegmentCut(head)
        outputs += [f"output{i + 1}_masks" for i in range(len(strides))] + ["protos_output"]  # depthai-nodes' names
        info = TaskInfo("segment", names, outputs, strides, SUBTYPE, n_prototypes=int(head.nm), family=family)
    else:
        cut.model[-1] = DetectCut(head)
        info = TaskInfo("detect", names, outputs, strides, SUBTYPE, family=family)
    return DetectExport(cut, outputs), info


def has_one_to_one(head: Any) -> bool:
    """Whether the head has an end-to-end (NMS-free) one-to-one branch (YOLOv10, YOLO26)."""
    return getattr(head, "one2one_cv2", None) is not None


def check_class_count(path: Path, names: list[str], labels: Path | None, classes: int) -> None:
    """One name per class the head predicts: the parsers, the drawing and --results index by it."""
    if len(names) == classes:
        return
    if labels is not None:
        raise UserError(f"--labels {labels} lists {len(names)} classes but {path.name}'s head predicts {classes}",
                        "give one name per class, one per line, in class-id order")
    raise ModelError(f"{path.name} names {len(names)} classes but its head predicts {classes}",
                     f"pass --labels FILE with {classes} names, one per line (or re-save the checkpoint with "
                     f"model.names listing {classes} classes)")


def check_head(head: Any, task: str, name: str) -> None:
    """Refuse, in one line, a head whose outputs no depthai-nodes YOLO parser decodes."""
    layout, end_to_end = type(head).__name__, has_one_to_one(head)
    if layout in (E2E_HEADS if end_to_end else CUT_HEADS)[task]:
        return
    if end_to_end:
        raise UnsupportedModelError(
            f"{name} has an end-to-end (NMS-free) {layout} head; oakpipe cuts the end-to-end heads of "
            "YOLOv10 and YOLO26 (detect, segment, pose) only",
            f"export it with Ultralytics to ONNX and pass the .onnx (raw outputs), or use a YOLO11 {task} model",
        )
    raise UnsupportedModelError(
        f"{name} has a {layout} head, whose outputs no depthai-nodes parser decodes (oakpipe cuts Ultralytics' "
        f"{', '.join(CUT_HEADS[task])} heads: YOLOv5u, v8, v9, v10, 11, 26)",
        "export it with Ultralytics to ONNX and pass the .onnx (raw outputs, no decoding)",
    )


def nms_free(cut: Any, head: Any, info: TaskInfo) -> tuple[nn.Module, TaskInfo]:
    """The one-to-one branch, cut where depthai-nodes' yolov10 / yolo26 subtype reads it."""
    n_keypoints = 0
    if type(head).__name__ == "v10Detect":
        outputs = [f"output{i + 1}_yolov10" for i in range(len(info.strides))]
        cut.model[-1] = DetectCut(head, one_to_one=True)
        subtype = V10_SUBTYPE
    elif info.task == "pose":
        outputs = [E2E_OUTPUT, "kpt_output"]  # the names depthai-nodes' yolo26 pose mode reads
        cut.model[-1] = DecodedPoseCut(head)
        subtype, n_keypoints = E2E_SUBTYPE, int(head.kpt_shape[0])
    elif info.task == "segment":
        outputs = [E2E_OUTPUT, "output_masks", "protos_output"]  # the names its yolo26 segment mode reads
        cut.model[-1] = DecodedSegmentCut(head)
        subtype = E2E_SUBTYPE
    else:
        outputs = [E2E_OUTPUT]
        cut.model[-1] = DecodedCut(head)
        subtype = E2E_SUBTYPE
    n_prototypes = int(head.nm) if info.task == "segment" else 0
    info = TaskInfo(info.task, info.names, outputs, info.strides, subtype, n_keypoints=n_keypoints,
                    n_prototypes=n_prototypes, family=info.family)
    return DetectExport(cut, outputs), info


class DetectCut(nn.Module):
    """Detect head up to the DFL: per stride [l, t, r, b (grid units), max score, class scores].

    ``one_to_one`` takes the end-to-end branch (YOLOv10's NMS-free boxes and scores)."""

    def __init__(self, head: Any, one_to_one: bool = False) -> None:  # an Ultralytics head: untyped attributes
        super().__init__()
        branch = head.one2one if one_to_one else head.one2many
        self.box, self.cls, self.dfl = branch["box_head"], branch["cls_head"], head.dfl
        self.reg_max, self.nl = head.reg_max, head.nl
        self.f, self.i = head.f, head.i  # routing attributes Ultralytics reads, as is its "type"
        self.type = "DetectCut"  # type: ignore[method-assign, assignment]

    def distances(self, i: int, feats: list[torch.Tensor]) -> torch.Tensor:
        """Stride ``i``'s DFL box distances, (b, 4, h*w): left, top, right, bottom in cells."""
        box = self.box[i](feats[i])
        b, _, h, w = box.shape
        return self.dfl(box.view(b, 4 * self.reg_max, h * w)).view(b, 4, h * w)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        outputs = []
        for i in range(self.nl):
            b, _, h, w = feats[i].shape
            distances = self.distances(i, feats).view(b, 4, h, w)
            scores = self.cls[i](feats[i]).sigmoid()
            outputs.append(torch.cat([distances, scores.amax(1, keepdim=True), scores], 1))
        return outputs


def grid(h: int, w: int, dtype: torch.dtype, offset: float = 0.0) -> torch.Tensor:
    """(2, h*w): each cell's x, y in cells, row-major as Ultralytics orders anchors; ``offset``
    0.5 gives the cells' centres, 0 their corners."""
    gy, gx = torch.meshgrid(torch.arange(h, dtype=dtype), torch.arange(w, dtype=dtype), indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)]) + offset


class PoseCut(DetectCut):
    """DetectCut, then per stride the keypoints: x, y decoded to input pixels, visibility logits.

    Keypoint positions are decoded on the device (as Luxonis' tools do): each is the cell's
    position plus an offset, so FP16 holds them as well as it holds the box distances.
    """

    def __init__(self, head: Any) -> None:  # an Ultralytics head: its attributes are untyped
        super().__init__(head)
        self.kpt, self.kpt_shape, self.strides = head.cv4, tuple(head.kpt_shape), [float(s) for s in head.stride]
        self.type = "PoseCut"  # type: ignore[method-assign, assignment]

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        outputs = super().forward(feats)
        for i in range(self.nl):
            raw = self.kpt[i](feats[i])
            b, _, h, w = raw.shape
            y = raw.view(b, self.kpt_shape[0], self.kpt_shape[1], h * w)
            cells = grid(h, w, raw.dtype)[None, None]  # (1, 1, 2, h*w): cell corners
            xy = (y[:, :, :2] * 2.0 + cells) * self.strides[i]
            decoded = torch.cat([xy, y[:, :, 2:]], 2) if self.kpt_shape[1] == 3 else xy
            outputs.append(decoded.reshape(b, self.kpt_shape[0] * self.kpt_shape[1], h * w))
        return outputs


class DecodedCut(DetectCut):
    """The one-to-one branch decoded as depthai-nodes' yolo26 subtype reads it: one tensor
    (1, anchors, 5 + classes), per anchor x1, y1, x2, y2 in input pixels, the max score and
    the sigmoid class scores (stride 8 anchors first, row-major, as Ultralytics orders them)."""

    def __init__(self, head: Any) -> None:  # an Ultralytics head: its attributes are untyped
        super().__init__(head, one_to_one=True)
        self.nc, self.strides = head.nc, [float(s) for s in head.stride]
        self.type = "DecodedCut"  # type: ignore[method-assign, assignment]

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        rows = []
        for i in range(self.nl):
            b, _, h, w = feats[i].shape
            distances = self.distances(i, feats)  # l, t, r, b in cells
            centres = grid(h, w, distances.dtype, 0.5)[None]  # (1, 2, h*w): cell centres
            corners = torch.cat([centres - distances[:, :2], centres + distances[:, 2:]], 1) * self.strides[i]
            scores = self.cls[i](feats[i]).view(b, self.nc, h * w).sigmoid()
            rows.append(torch.cat([corners, scores.amax(1, keepdim=True), scores], 1))
        return [torch.cat(rows, 2).permute(0, 2, 1)]  # a list, as the other cuts return (one named output)


class DecodedPoseCut(DecodedCut):
    """DecodedCut, then the one-to-one keypoints as depthai-nodes' yolo26 pose mode reads them:
    (1, anchors, keypoints x 3), x and y decoded to input pixels, visibility as a probability
    (Ultralytics' Pose26 decode: offset plus cell centre, times the stride)."""

    def __init__(self, head: Any) -> None:  # an Ultralytics head: its attributes are untyped
        super().__init__(head)
        self.features, self.kpts, self.kpt_shape = head.one2one_cv4, head.one2one_cv4_kpts, tuple(head.kpt_shape)
        self.type = "DecodedPoseCut"  # type: ignore[method-assign, assignment]

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        outputs = super().forward(feats)
        points = []
        for i in range(self.nl):
            raw = self.kpts[i](self.features[i](feats[i]))
            b, _, h, w = raw.shape
            y = raw.view(b, self.kpt_shape[0], self.kpt_shape[1], h * w)
            centres = grid(h, w, raw.dtype, 0.5)[None, None]  # (1, 1, 2, h*w)
            xy = (y[:, :, :2] + centres) * self.strides[i]
            decoded = torch.cat([xy, y[:, :, 2:].sigmoid()], 2) if self.kpt_shape[1] == 3 else xy
            points.append(decoded.reshape(b, self.kpt_shape[0] * self.kpt_shape[1], h * w))
        return outputs + [torch.cat(points, 2).permute(0, 2, 1)]


class DecodedSegmentCut(DecodedCut):
    """DecodedCut, then the one-to-one mask coefficients (1, anchors, prototypes) and the
    prototypes (1, prototypes, H/4, W/4), as depthai-nodes' yolo26 segment mode reads them."""

    def __init__(self, head: Any) -> None:  # an Ultralytics head: its attributes are untyped
        super().__init__(head)
        self.coefficients, self.proto, self.nm = head.one2one_cv4, head.proto, int(head.nm)
        self.type = "DecodedSegmentCut"  # type: ignore[method-assign, assignment]

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        outputs = super().forward(feats)
        b = feats[0].shape[0]
        coefficients = torch.cat([self.coefficients[i](feats[i]).view(b, self.nm, -1) for i in range(self.nl)], 2)
        return outputs + [coefficients.permute(0, 2, 1), self.proto(feats)]  # Proto26 reads every stride


class SegmentCut(DetectCut):
    """DetectCut, then per stride the mask coefficients, then the mask prototypes (stride 4)."""

    def __init__(self, head: Any) -> None:  # an Ultralytics head: its attributes are untyped
        super().__init__(head)
        self.coefficients, self.proto = head.cv4, head.proto
        self.type = "SegmentCut"  # type: ignore[method-assign, assignment]

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        outputs = super().forward(feats)
        outputs += [self.coefficients[i](feats[i]) for i in range(self.nl)]
        return outputs + [self.proto(feats[0])]


class DetectExport(nn.Module):
    """Named per-stride outputs (a dict, so the ONNX outputs carry the parser's names)."""

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.model(x)))


class ClassifyExport(nn.Module):
    """Class probabilities (the softmax Ultralytics' Classify head applies at inference)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out[0] if isinstance(out, (tuple, list)) else out


def bundled_yaml(spec: str) -> Path:
    """A YAML Ultralytics ships: ``yolo11n.yaml`` is ``yolo11.yaml`` at scale n (Ultralytics' own
    naming rule); its path, or the spec unchanged if Ultralytics has no such file."""
    import_ultralytics()
    from ultralytics.utils.checks import check_yaml

    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", Path(spec).stem) + Path(spec).suffix
    for name in (spec, unified):
        try:
            found = check_yaml(name, hard=False)
        except Exception:
            found = None
        if found:
            return Path(found)
    return Path(spec)


def build_for_export(path: Path | None, spec: str | None = None, labels: Path | None = None) -> nn.Module:
    """``build``'s module, carrying its TaskInfo as ``oakpipe_task`` (read by the convert stages).

    ``spec`` keeps a bundled YAML's scale: ``yolo11s.yaml`` resolves to the file yolo11.yaml,
    and Ultralytics reads the scale from the name it is given."""
    assert path is not None
    if spec and path.suffix.lower() in (".yaml", ".yml") and not Path(spec).is_file():
        path = path.with_name(Path(spec).name)  # Ultralytics finds the unified file and the scale itself
    module, info = build(path, labels=labels)
    module.oakpipe_task = info  # type: ignore[assignment]
    return module
