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
        """Rows [x1, y1, x2, y2, score, class], highest score first (boxes in the input's format).

        torchvision's per-class procedure, taken in one pass over every (box, class) pair in
        decreasing score: a pair is kept when it is among its class's ``topk_candidates``
        best and no kept box of its class overlaps it by more than ``iou_threshold``. Each
        decision depends only on higher-scoring pairs of the same class, so the result is
        torchvision's, and the pass stops at ``max_det``: a few hundred pairs are looked at,
        not every class's full NMS (0.4-0.7 s a frame at SSDlite's 0.001 threshold)."""
        first = 1 if self.background_class else 0
        flat = np.ascontiguousarray(scores[:, first:]).ravel()
        candidates = np.flatnonzero(flat > self.conf_threshold)
        count = min(len(candidates), 4 * self.max_det)
        while True:
            rows, exhausted = self._greedy(boxes, flat, candidates, count, scores.shape[1] - first)
            if len(rows) >= self.max_det or exhausted:
                rows[:, 5] += first
                return rows
            count = min(len(candidates), 4 * count)  # too many suppressed: look further down

    def _greedy(self, boxes: np.ndarray, flat: np.ndarray, candidates: np.ndarray, count: int,
                classes: int) -> tuple[np.ndarray, bool]:
        """(kept rows among the ``count`` best pairs, whether those were all the candidates)."""
        values = flat[candidates]
        best = np.argpartition(-values, count - 1)[:count] if 0 < count < len(values) else np.arange(len(values))
        order = candidates[best[np.argsort(-values[best], kind="stable")]]
        kept_boxes = np.zeros((classes, self.max_det, 4), np.float64)
        kept_count = np.zeros(classes, np.int64)
        seen = np.zeros(classes, np.int64)
        rows = []
        for pair in order:
            anchor, label = divmod(int(pair), classes)
            seen[label] += 1
            if seen[label] > self.topk_candidates:
                continue
            box = boxes[anchor].astype(np.float64)
            if kept_count[label] and iou(box, kept_boxes[label, : kept_count[label]]).max() > self.iou_threshold:
                continue
            kept_boxes[label, kept_count[label]] = box
            kept_count[label] += 1
            rows.append((*box, flat[pair], label))
            if len(rows) == self.max_det:
                break
        return np.asarray(rows, np.float32).reshape(-1, 6), count >= len(candidates)


def iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one corner box with each of ``others`` (0 where the union is empty, as torchvision's
    NaN then suppresses nothing); the same in normalized and pixel corners, as both axes scale alike."""
    top_left = np.maximum(box[:2], others[:, :2])
    bottom_right = np.minimum(box[2:], others[:, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=1)
    area = (box[2] - box[0]) * (box[3] - box[1])
    union = area + (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
