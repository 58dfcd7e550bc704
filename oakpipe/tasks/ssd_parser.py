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

from oakpipe.errors import UserError

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
        """([A, 4] boxes, [A, C] scores) from a ``dai.NNData``, dequantized. Either may come
        transposed ([4, A], [C, A]: a device that stores a rank-3 tensor the other way round);
        a layout that fits neither is refused, not read as something else."""
        boxes = anchors_first(message.getTensor(self.boxes_output, dequantize=True), 4, self.boxes_output)
        scores = np.asarray(message.getTensor(self.scores_output, dequantize=True), dtype=np.float32)
        return boxes, anchors_first(scores, len(boxes), self.scores_output, by_rows=True)

    def compute(self, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Rows [x1, y1, x2, y2, score, class], highest score first (boxes in the input's format).

        torchvision's per-class procedure, on the best (box, class) pairs only: a pair is kept
        when it is among its class's ``topk_candidates`` best and no kept box of its class
        overlaps it by more than ``iou_threshold``. Each decision depends only on
        higher-scoring pairs of the same class, so the ``4 * max_det`` best pairs decide the
        first ``max_det`` kept exactly as all of them would (more are taken when too few
        survive): a few hundred pairs, not every class's full NMS (0.4-0.7 s a frame at
        SSDlite's 0.001 threshold)."""
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
        """(kept rows among the ``count`` best pairs, whether those were all the candidates).

        Every pair of a class that decides whether a pair is kept scores higher, so it is in
        the block too: each class's share of the block (its best first, cut at the top-k) goes
        through NMS on its own, and the kept pairs, in the block's order, are the answer."""
        values = flat[candidates]
        best = np.argpartition(-values, count - 1)[:count] if 0 < count < len(values) else np.arange(len(values))
        order = candidates[best[np.argsort(-values[best], kind="stable")]]
        anchors, labels = np.divmod(order, classes)
        kept = []
        for label in np.unique(labels):
            mine = np.flatnonzero(labels == label)[: self.topk_candidates]
            kept.append(mine[nms(boxes[anchors[mine]], self.iou_threshold)])
        chosen = np.sort(np.concatenate(kept or [np.zeros(0, np.int64)]))[: self.max_det]
        rows = np.empty((len(chosen), 6), np.float32)
        rows[:, :4], rows[:, 4], rows[:, 5] = boxes[anchors[chosen]], flat[order[chosen]], labels[chosen]
        return rows, count >= len(candidates)


def anchors_first(tensor, size: int, name: str, by_rows: bool = False) -> np.ndarray:
    """``tensor`` as a 2-D [anchors, values] array: ``size`` values per anchor (or, with
    ``by_rows``, ``size`` anchors), transposing it if it came the other way round."""
    array = np.asarray(tensor, dtype=np.float32)
    array = array.reshape(array.shape[-2:]) if array.ndim >= 2 and np.prod(array.shape[:-2]) == 1 else array
    axis = 0 if by_rows else 1
    if array.ndim == 2 and array.shape[axis] == size:
        return array
    if array.ndim == 2 and array.shape[1 - axis] == size:
        return np.ascontiguousarray(array.T)
    raise UserError(f"the SSD output {name} has shape {list(np.shape(tensor))}, which oakpipe's SSD parser cannot read "
                    "(boxes [1, A, 4] and scores [1, A, classes])", "export the torchvision SSD again with oakpipe")


def nms(boxes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS over boxes sorted by decreasing score: the indices kept, in order. A box
    is suppressed by a kept one overlapping it by IoU above the threshold (torchvision's
    ``nms``); IoU is the same in normalized and pixel corners, as both axes scale alike, and
    0 where the union is empty (torchvision's NaN, which suppresses nothing)."""
    corners = boxes.astype(np.float64)
    top_left = np.maximum(corners[:, None, :2], corners[None, :, :2])
    bottom_right = np.minimum(corners[:, None, 2:], corners[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area = (corners[:, 2] - corners[:, 0]) * (corners[:, 3] - corners[:, 1])
    union = area[:, None] + area[None, :] - inter
    overlaps = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0) > iou_threshold
    suppressed = np.zeros(len(boxes), bool)
    keep = []
    for i in range(len(boxes)):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= overlaps[i]
    return np.asarray(keep, np.int64)
