"""depthai-nodes' YOLO decode with its greedy NMS run per class through OpenCV: same rows, faster.

``decode_yolo_output`` (depthai-nodes) decodes each head with ``parse_yolo_output`` and then
suppresses with a NumPy loop that runs once per *kept* box over every candidate of every
class (the classes are kept apart by offsetting boxes by ``class * 7680`` px). Random-weight
or low-threshold frames keep hundreds of boxes: 30 ms a frame at 416x416 for 500 kept, as
long as the network's inference. Here the same heads are decoded by the same
``parse_yolo_output``, the candidates are filtered, sorted and offset exactly as
``non_max_suppression`` does (float32 boxes, scores argsorted as float32 and reversed), and
the greedy suppression runs in C++ (``cv2.dnn.NMSBoxes``) on each class alone: boxes of two
classes never overlap once offset, so per class is the same greedy; the kept boxes are merged
back in the global score order and cut at ``MAX_DET``. Boxes are given to OpenCV one pixel
wider and taller, which is depthai-nodes' ``(x2 - x1 + 1) * (y2 - y1 + 1)`` area and
intersection. The rows are those ``decode_yolo_output`` returns, in its order (tested on
real model outputs in tests/tasks/test_fast_decode.py); only an IoU within float32
rounding of the threshold could be judged differently (OpenCV computes it in float64).
"""

from __future__ import annotations

import numpy as np

MAX_NMS = 3000  # decode_yolo_output's default: candidates kept by objectness before NMS
MAX_DET = 300  # non_max_suppression's default (decode_yolo_output does not pass the head's)
MAX_WH = 7680  # non_max_suppression's class offset in pixels


def yolo_rows(inputs) -> np.ndarray:
    """``decode_yolo_output``'s rows [x1, y1, x2, y2, score, class, extra...] (input pixels) for
    the parser's extracted inputs (``YOLOComputeInputs``)."""
    from depthai_nodes.node.parsers.utils.yolo import parse_yolo_output

    kpts = list(inputs.kpts_outputs) if inputs.kpts_outputs else None
    det_mode = kpts is None and not inputs.masks_outputs_values  # seg rows carry head/anchor/cell
    width = inputs.n_classes + 5
    conf = inputs.conf_threshold
    kept = []
    for i, (out, stride) in enumerate(zip(inputs.outputs_values, inputs.strides)):
        anchors = inputs.anchors[i] if inputs.anchors is not None else None
        if anchors is None and not np.any(out[:, 4] > conf):  # channel 4 is the score the filter below reads:
            continue  # no cell passes, so the head's decode (grid, keypoint sigmoids, seg indices) is skipped
        # parse_yolo_output applies the sigmoid to keypoint visibilities in place (hence the copy)
        head_kpts = np.array(kpts[i], dtype=np.float32) if kpts else None
        rows = parse_yolo_output(out, stride, width, anchors, head_id=i, kpts=head_kpts,
                                 det_mode=det_mode, subtype=inputs.subtype)
        rows = rows[rows[..., 4] > conf]
        if len(rows):
            kept.append(rows)
    if not kept:
        return np.zeros((0, 6))
    candidates = np.concatenate(kept, axis=0)
    if np.unique(candidates[:, 4]).size != 1 and len(candidates) > MAX_NMS:
        candidates = candidates[np.argsort(candidates[:, 4])[::-1][:MAX_NMS]]
    return suppress(candidates, conf, inputs.iou_threshold, inputs.n_classes)


def suppress(x: np.ndarray, conf: float, iou: float, n_classes: int) -> np.ndarray:
    """``non_max_suppression`` of depthai-nodes for one image of candidates (N x (5 + classes + extra))."""
    from depthai_nodes.node.parsers.utils import xywh_to_xyxy

    box = xywh_to_xyxy(x[:, :4])
    scores = x[:, 5 : 5 + n_classes]
    rows = np.concatenate((box, scores.max(1, keepdims=True), np.expand_dims(scores.argmax(1), 1),
                           x[:, 5 + n_classes :]), 1)
    rows = rows[rows[:, 4] > conf]
    if not len(rows):
        return np.zeros((0, 6 + x.shape[1] - 5 - n_classes))
    if len(rows) > MAX_NMS:  # as depthai-nodes does (it keeps the lowest scores; unreachable after MAX_NMS above)
        rows = rows[rows[:, 4].argsort()[:MAX_NMS]]
    keep = greedy_per_class(rows[:, :4] + rows[:, 5:6] * MAX_WH, rows[:, 4], rows[:, 5], iou)
    return rows[keep[:MAX_DET]]


def greedy_per_class(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    """Indices that depthai-nodes' ``nms`` keeps, in its order: boxes by decreasing float32
    score (``argsort()[::-1]``, ties included), each kept unless its IoU with a kept box
    of its class exceeds ``iou``."""
    import cv2

    corners = boxes.astype(np.float32).astype(np.float64)  # the float32 boxes depthai-nodes measures
    rects = np.column_stack((corners[:, :2], corners[:, 2:] - corners[:, :2] + 1))  # +1: its area convention
    order = scores.astype(np.float32).argsort()[::-1]
    rank = np.empty(len(order), np.float32)
    rank[order] = np.arange(len(order), 0, -1)  # OpenCV sorts by these: depthai-nodes' order, ties and all
    kept = []
    for value in np.unique(classes):
        members = np.flatnonzero(classes == value)
        found = cv2.dnn.NMSBoxes(rects[members], rank[members], 0.0, float(iou))  # type: ignore[arg-type]  # arrays are taken
        kept.append(members[np.asarray(found, dtype=np.intp).reshape(-1)])
    keep = np.concatenate(kept)
    return keep[np.argsort(-rank[keep], kind="stable")]
