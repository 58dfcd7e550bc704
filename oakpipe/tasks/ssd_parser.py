"""oakpipe's own parser for SSD heads: the one parser oakpipe writes, because depthai-nodes has none.

depthai-nodes 0.7.0's ``DetectionParser`` reads boxes with one score each (single-class);
its YOLO, SCRFD, YuNet, PP-Det, MediaPipe and RF-DETR parsers read their own layouts. A
torchvision SSD export (oakpipe.tasks.torchvision_ssd) gives every anchor a box and a score
per class, and torchvision's ``SSD.postprocess_detections`` keeps, for each class but the
background: the scores above ``conf_threshold``, the ``topk_candidates`` best of them; then
class-aware NMS at ``iou_threshold`` over everything kept, highest score first, and the
first ``max_det``. This is that procedure in numpy, with the same comparisons (``>`` for
the threshold and for suppression), so its detections are torchvision's.

It is configured from the NN Archive head (luxonis-ml's SSD metadata: ``boxes_outputs``,
``scores_outputs``, thresholds, classes) and reads a ``dai.NNData`` as depthai-nodes'
parsers do, so the camera and the host emulator decode with this same code
(oakpipe.tasks.decode).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NAME = "OakpipeSSDParser"  # the archive head's parser name: not a depthai-nodes class, on purpose
BOX_FORMAT = "xyxy_normalized"  # corners over the input's width and height, in [0, 1]


@dataclass
class SSDParser:
    boxes_output: str
    scores_output: str
    conf_threshold: float
    iou_threshold: float
    max_det: int
    topk_candidates: int
    background_class: bool = True  # class 0 is the background: never a detection

    @classmethod
    def build(cls, config: dict) -> "SSDParser":
        """From a head config (depthai-nodes' ``decode_head`` dict, or oakpipe's own)."""
        return cls(str(config["boxes_outputs"]), str(config["scores_outputs"]), float(config["conf_threshold"]),
                   float(config["iou_threshold"]), int(config["max_det"]), int(config["topk_candidates"]),
                   bool(config.get("background_class", True)))

    def extract(self, message) -> tuple[np.ndarray, np.ndarray]:
        """([A, 4] boxes, [A, C] scores) from a ``dai.NNData``, dequantized."""
        boxes = np.asarray(message.getTensor(self.boxes_output, dequantize=True), dtype=np.float32)
        scores = np.asarray(message.getTensor(self.scores_output, dequantize=True), dtype=np.float32)
        return boxes.reshape(-1, 4), scores.reshape(boxes.size // 4, -1)

    def compute(self, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Rows [x1, y1, x2, y2, score, class], highest score first (boxes in the input's format)."""
        kept = [self._class_candidates(boxes, scores[:, label], label)
                for label in range(1 if self.background_class else 0, scores.shape[1])]
        rows = np.concatenate([r for r in kept if len(r)] or [np.zeros((0, 6), np.float32)])
        order = np.argsort(-rows[:, 4], kind="stable")
        return rows[order][: self.max_det]

    def _class_candidates(self, boxes: np.ndarray, score: np.ndarray, label: int) -> np.ndarray:
        """One class: above the threshold, its top-k, then NMS (rows by decreasing score)."""
        index = np.flatnonzero(score > self.conf_threshold)
        index = index[np.argsort(-score[index], kind="stable")][: self.topk_candidates]
        keep = index[nms(boxes[index], self.iou_threshold)]
        rows = np.empty((len(keep), 6), np.float32)
        rows[:, :4], rows[:, 4], rows[:, 5] = boxes[keep], score[keep], label
        return rows


def nms(boxes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS over boxes already sorted by decreasing score: the indices kept, in order.

    A box is suppressed by a kept one when their IoU is above the threshold (torchvision's
    ``nms``); IoU is the same in normalized and pixel corners, as both axes scale alike."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    corners = boxes.astype(np.float64)
    area = np.clip(corners[:, 2] - corners[:, 0], 0, None) * np.clip(corners[:, 3] - corners[:, 1], 0, None)
    top_left = np.maximum(corners[:, None, :2], corners[None, :, :2])
    bottom_right = np.minimum(corners[:, None, 2:], corners[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    union = area[:, None] + area[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    suppressed = np.zeros(len(boxes), bool)
    keep = []
    for i in range(len(boxes)):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= iou[i] > iou_threshold
    return np.asarray(keep, np.int64)
