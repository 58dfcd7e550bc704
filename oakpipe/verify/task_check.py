"""Verify by task: what the user sees (decoded boxes, masks, top-k), stage by stage.

The raw-tensor rows say whether a stage computes the same numbers; for a detector,
segmenter, pose model or classifier these rows say whether it gives the same answer. Every
stage's outputs on the photograph are decoded with the code ``run`` uses (oakpipe.tasks.decode:
depthai-nodes' parsers configured from the archive head), and compared with PyTorch's:

- boxes: greedy one-to-one matching, same class and IoU >= MATCH_IOU, in both directions
  (the reference's boxes found by the stage, the stage's boxes found in the reference), the
  largest score difference of a matched pair, and for segmenters the mean mask IoU of the
  matched pairs (for pose models the largest keypoint shift, reported); a box near the threshold may cross it on rounding, so each side's boxes
  are looked for among the other side's decoded at half the threshold;
- classifiers: top-1 and the top-5 overlap;
- semantic segmenters: the fraction of pixels given the same class, and the mean class IoU
  (a depth model has no task check: its raw-tensor rows are the map the user sees).

Verdict (``TaskCheck.passed``): a stage fails when fewer than MIN_MATCHED of the boxes are
matched in either direction (of the pixels, for a class map), or a classifier's top-1 changes (unless the reference's two
classes are within TIE probability of each other: a tie no user could rely on). Only the
photograph is judged: decoded detections on random noise are near-threshold noise themselves.
A model whose reference shows fewer than MIN_BOXES boxes at the head's threshold (random or
barely trained weights) is judged at the threshold that shows MIN_BOXES, and the row says so,
rather than passing on zero boxes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from oakpipe.tasks.decode import Decoded, TaskDecoder

JUDGED = ("detect", "segment", "pose", "classify", "segment-semantic")  # depth: its raw rows are the map
BOX_TASKS = ("detect", "segment", "pose")
MATCH_IOU = 0.5
MIN_MATCHED = 0.9
TIE = 0.01
MIN_BOXES = 10
LOWEST_CONF = 0.001


@dataclass
class TaskCheck:
    stage: str
    what: str  # "boxes", "boxes+masks", "boxes+keypoints", "top-5"
    passed: bool
    summary: str
    conf: float | None = None  # the threshold judged at
    head_conf: float | None = None  # the archive head's
    reference_count: int = 0
    stage_count: int = 0
    matched_reference: float | None = None  # fraction of the reference's boxes the stage has
    matched_stage: float | None = None  # fraction of the stage's boxes the reference has
    max_score_diff: float | None = None
    mask_iou: float | None = None
    keypoint_shift_px: float | None = None  # pose: largest shift of a keypoint both sides see
    top1_same: bool | None = None
    top5_overlap: int | None = None

    @property
    def decisive(self) -> bool:
        """False when neither side shows anything (an untrained head): nothing was compared, so
        the check cannot speak for the stage; its raw-tensor rows decide."""
        return self.reference_count > 0 or self.stage_count > 0

    def to_dict(self) -> dict:
        return {**asdict(self), "decisive": self.decisive}


def head_config(task: dict, input_shape: tuple[int, ...]) -> dict:
    """depthai-nodes' head config for ``task`` (a TaskInfo dict), as ``decode_head`` reads it
    from the archive: the archive need not exist (verify may run without a blob)."""
    from oakpipe.tasks.heads import head_fields
    from oakpipe.tasks.info import TaskInfo

    info = TaskInfo.from_dict(task)
    assert info is not None
    fields = head_fields(info)
    config = {"parser": fields["parser"], "outputs": fields["outputs"], **fields["metadata"]}
    config["model_inputs"] = [{"shape": list(input_shape), "layout": "NCHW"}]
    return config


def conf_line(judge_conf: float | None, head_conf: float | None) -> str:
    """How the boxes were thresholded, for the report's heading."""
    if judge_conf is None:
        return ""
    lowered = "" if judge_conf == head_conf else f" (PyTorch shows < {MIN_BOXES} boxes at the head's {head_conf:g})"
    return f"; boxes at conf {judge_conf:.3g}{lowered}, matched with IoU >= {MATCH_IOU} and the same class"


class TaskJudge:
    """Decodes one frame's outputs of the reference and of each stage, and compares them."""

    def __init__(self, task: dict, input_shape: tuple[int, ...], reference: dict) -> None:
        self.config = head_config(task, input_shape)
        self.shape = list(input_shape)
        self.task = task["task"]
        self.conf = self._judged_conf(reference) if self.task in BOX_TASKS else None
        self.reference = self.decode(reference, self.conf)
        self.reference_low = self.decode(reference, self.conf / 2) if self.conf is not None else None

    def decode(self, outputs: dict, conf: float | None) -> Decoded:
        return TaskDecoder(self.config, self.shape, conf=conf).decode(outputs)

    def _judged_conf(self, reference: dict) -> float:
        head = float(self.config["conf_threshold"])
        if len(self.decode(reference, head).detections) >= MIN_BOXES:
            return head
        scores = sorted((d.score for d in self.decode(reference, LOWEST_CONF).detections), reverse=True)
        nth = float(scores[MIN_BOXES - 1]) * 0.999 if len(scores) >= MIN_BOXES else LOWEST_CONF  # keeps the nth
        return max(LOWEST_CONF, nth)

    def check(self, stage: str, outputs: dict) -> TaskCheck:
        if self.task == "classify":
            return self._classes(stage, self.decode(outputs, None))
        if self.task == "segment-semantic":
            return self._pixels(stage, self.decode(outputs, None))
        assert self.conf is not None  # set for every box task (BOX_TASKS)
        return self._boxes(stage, self.decode(outputs, self.conf), self.decode(outputs, self.conf / 2))

    def _classes(self, stage: str, got: Decoded) -> TaskCheck:
        ref_ids = [i for i, _, _ in self.reference.top]
        got_ids = [i for i, _, _ in got.top]
        ref_scores = {i: s for i, _, s in self.reference.top}
        same = ref_ids[:1] == got_ids[:1]
        tie = not same and got_ids[0] in ref_scores and ref_scores[ref_ids[0]] - ref_scores[got_ids[0]] <= TIE
        overlap = len(set(ref_ids) & set(got_ids))
        summary = (f"top-1 {'same' if same else 'near tie' if tie else 'DIFFERS'} "
                   f"({self.reference.top[0][1]} vs {got.top[0][1]}), top-5 overlap {overlap}/{len(ref_ids)}")
        return TaskCheck(stage, f"top-{len(ref_ids)}", same or tie, summary, None, None, len(ref_ids), len(got_ids),
                         top1_same=same, top5_overlap=overlap)

    def _pixels(self, stage: str, got: Decoded) -> TaskCheck:
        """Semantic segmentation: the fraction of pixels given the same class, and the mean IoU
        over the classes either side shows."""
        ref, mine = self.reference.map, got.map
        assert ref is not None and mine is not None
        same = float(np.mean(ref == mine))
        classes = np.union1d(np.unique(ref), np.unique(mine))
        mean_iou = float(np.mean([iou_masks(ref == c, mine == c) for c in classes]))
        summary = f"{same:.1%} of pixels the same class, mean IoU {mean_iou:.3f} over {len(classes)} classes"
        return TaskCheck(stage, "class map", same >= MIN_MATCHED, summary, None, None, int(ref.size),
                         int(mine.size), same, same, mask_iou=mean_iou)

    def _boxes(self, stage: str, got: Decoded, got_low: Decoded) -> TaskCheck:
        ref, ref_low = self.reference, self.reference_low
        assert ref_low is not None and self.conf is not None
        found = match(ref.detections, got_low.detections)  # the reference's boxes the stage shows
        shown = match(got.detections, ref_low.detections)  # the stage's boxes the reference shows
        m_ref = len(found) / len(ref.detections) if ref.detections else 1.0
        m_got = len(shown) / len(got.detections) if got.detections else 1.0
        diffs = [abs(ref.detections[i].score - got_low.detections[j].score) for i, j in found]
        mask_iou = None
        if ref.masks is not None and got_low.masks is not None and found:
            mask_iou = float(np.mean([iou_masks(ref.masks[i], got_low.masks[j]) for i, j in found]))
        shift = keypoint_shift([(ref.detections[i], got_low.detections[j]) for i, j in found])
        what = {"segment": "boxes+masks", "pose": "boxes+keypoints"}.get(self.task, "boxes")
        passed = m_ref >= MIN_MATCHED and m_got >= MIN_MATCHED
        head = float(self.config["conf_threshold"])
        if not ref.detections and not got.detections:
            summary = f"no boxes on either side at conf {self.conf:.3g}: nothing to compare (the raw rows decide)"
            return TaskCheck(stage, "boxes", True, summary, self.conf, float(self.config["conf_threshold"]))
        summary = (f"{len(found)}/{len(ref.detections)} of PyTorch's boxes found, {len(shown)}/{len(got.detections)} "
                   "of the stage's in PyTorch's"
                   + (f", max score diff {max(diffs):.3g}" if diffs else "")
                   + (f", mask IoU {mask_iou:.3f}" if mask_iou is not None else "")
                   + (f", largest keypoint shift {shift:.2f} px" if shift is not None else ""))
        return TaskCheck(stage, what, passed, summary, self.conf, head, len(ref.detections), len(got.detections),
                         m_ref, m_got, max(diffs) if diffs else None, mask_iou, keypoint_shift_px=shift)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    lt = np.maximum(a[:2], b[:2])
    rb = np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(rb - lt, 0, None)))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(wanted: list, pool: list) -> list[tuple[int, int]]:
    """Greedy one-to-one matching, highest score first: (index in wanted, index in pool)."""
    taken: set[int] = set()
    pairs = []
    for i in sorted(range(len(wanted)), key=lambda k: -wanted[k].score):
        best, best_iou = -1, MATCH_IOU
        for j, candidate in enumerate(pool):
            if j in taken or candidate.class_id != wanted[i].class_id:
                continue
            overlap = box_iou(np.array(wanted[i].box), np.array(candidate.box))
            if overlap >= best_iou:
                best, best_iou = j, overlap
        if best >= 0:
            taken.add(best)
            pairs.append((i, best))
    return pairs


def keypoint_shift(pairs: list) -> float | None:
    """Largest distance (pixels) between a matched pair's keypoints visible on both sides
    (visibility >= 0.5, as drawn); None without keypoints."""
    shifts = [float(np.hypot(a[0] - b[0], a[1] - b[1])) for ref, got in pairs
              for a, b in zip(ref.keypoints, got.keypoints) if a[2] >= 0.5 and b[2] >= 0.5]
    return max(shifts) if shifts else None


def iou_masks(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
