"""Raw network outputs -> detections / top-k labels, with Luxonis' depthai-nodes parsers.

The parser is the one the NN Archive's head names (``YOLOExtendedParser``,
``ClassificationParser``), configured from the head exactly as depthai-nodes'
``ParsingNeuralNetwork`` configures it (``decode_head`` on depthai's own parse of the
archive). Both backends hand their outputs here as a ``dai.NNData`` (the host emulator
builds one from OpenVINO's outputs), so the camera and the emulator decode with the same
code; the parser's ``extract``/``compute`` run in this thread, in a host-only pipeline that
is never started, so no frame waits on a queue. No parser is written here: depthai-nodes
has one for each head oakpipe writes but the SSD's, whose parser is oakpipe's own
(oakpipe.tasks.ssd_parser), built from the same head config and fed the same ``dai.NNData``.
Two of depthai-nodes' YOLO steps, the NMS and the instance masks, run with less work
(``oakpipe.tasks.yolo_nms``, ``oakpipe.tasks.masks``), tested to give its results exactly.
One step is oakpipe's: end-to-end (NMS-free) heads' boxes are selected by Ultralytics' rule
(``nms_free_rows``) from the parser's tensors, since depthai-nodes keeps one class per anchor
where Ultralytics may keep two.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from oakpipe.errors import InternalError, UserError
from oakpipe.tasks.heads import NMS_FREE_SUBTYPES
from oakpipe.tasks.masks import InstanceMasks
from oakpipe.tasks.ssd_parser import NAME as SSD_PARSER
from oakpipe.tasks.ssd_parser import SSDParser

TOP_K = 5
DECODED_PARSERS = ("YOLOExtendedParser", "ClassificationParser", "SegmentationParser", "MapOutputParser", SSD_PARSER)


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels of the frame shown
    class_id: int
    name: str
    score: float
    keypoints: tuple[tuple[float, float, float], ...] = ()  # pose: (x, y, visibility) in pixels

    def to_dict(self) -> dict:
        data = {"box": [round(v, 2) for v in self.box], "class_id": self.class_id, "name": self.name,
                "score": round(self.score, 5)}
        if self.keypoints:
            data["keypoints"] = [[round(x, 2), round(y, 2), round(v, 4)] for x, y, v in self.keypoints]
        return data


@dataclass(frozen=True)
class Decoded:
    task: str
    detections: list[Detection] = field(default_factory=list)
    top: list[tuple[int, str, float]] = field(default_factory=list)  # classify: (class id, name, probability)
    masks: InstanceMasks | None = None  # segment: one mask per detection (they may overlap); masks[i] is H x W bool
    map: np.ndarray | None = None  # segment-semantic: H x W class ids (uint8); depth: H x W float map
    classes: list[str] = field(default_factory=list)  # segment-semantic: names of the class ids in ``map``
    shape: tuple[int, int] | None = None  # (height, width) of the frame shown, where ``map`` is drawn

    def name_of(self, class_id: int) -> str:
        return self.classes[class_id] if 0 <= class_id < len(self.classes) else str(class_id)

    def to_dict(self) -> dict:
        """The JSON ``--results`` writes; masks as COCO RLE (``oakpipe.tasks.rle``) in pixels of the frame shown."""
        from oakpipe.tasks import rle

        if self.task == "classify":
            return {"task": self.task, "top": [{"class_id": i, "name": n, "score": round(s, 5)} for i, n, s in self.top]}
        if self.task == "segment-semantic" and self.map is not None:  # each class present: pixels, mask
            ids = class_map_at(self.map, self.shape or self.map.shape)
            return {"task": self.task, "classes": [{"class_id": c, "name": self.name_of(c), "pixels": pixels, "mask": mask}
                                                   for c, pixels, mask in rle.encode_labels(ids, skip=NO_CLASS)]}
        if self.task == "depth" and self.map is not None:  # the map itself is in the view
            values = self.map.astype(np.float64)
            return {"task": self.task, "depth": {"min": round(float(values.min()), 5), "median":
                    round(float(np.median(values)), 5), "max": round(float(values.max()), 5), "shape": list(values.shape)}}
        detections = [d.to_dict() for d in self.detections]
        if self.masks is not None:
            for d, box, window in zip(detections, self.masks.boxes, self.masks.windows):
                d["mask"] = rle.encode(window, box, self.masks.shape)
                d["mask_pixels"] = rle.area(d["mask"])
        return {"task": self.task, "detections": detections}


NO_CLASS = 255  # depthai-nodes' SegmentationParser: a pixel of no class (background off)


def class_map_at(class_map: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A class map (the model's output size) at the frame's (height, width), nearest neighbour:
    what the view tints and what ``--results`` encodes."""
    import cv2

    if class_map.shape[:2] == tuple(shape):
        return class_map.astype(np.uint8, copy=False)
    return cv2.resize(class_map.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def head_of_archive(archive: Path) -> tuple[dict, list[int]] | None:
    """(depthai-nodes head config, model input NCHW shape) of the archive's first head, or None."""
    os.environ.setdefault("DEPTHAI_TELEMETRY", "0")
    import depthai as dai

    config = dai.NNArchiveVersionedConfig(str(archive)).getConfig()  # type: ignore[call-overload]  # stubs omit str
    if not config.model.heads or config.model.heads[0].parser not in DECODED_PARSERS:
        return None  # no head, or one run does not draw yet: the generic view, depthai-nodes not needed
    import_depthai_nodes()
    from depthai_nodes.node.parsers.utils.decode_head import decode_head

    inputs = config.model.inputs
    head_config = decode_head(config.model.heads[0])
    head_config["model_inputs"] = [{"shape": list(i.shape), "layout": str(i.layout)} for i in inputs]
    return head_config, list(inputs[0].shape)


class TaskDecoder:
    """One parser, configured from an archive head; ``decode(outputs)`` per frame."""

    def __init__(self, head_config: dict, input_shape: list[int], conf: float | None = None,
                 iou: float | None = None) -> None:
        name = head_config["parser"]
        config = dict(head_config)
        if conf is not None:
            config["conf_threshold"] = conf
        if iou is not None and config.get("subtype") not in NMS_FREE_SUBTYPES:  # as Ultralytics: no NMS to tune
            config["iou_threshold"] = iou
        self.pipeline, self.parser = (None, SSDParser.build(config)) if name == SSD_PARSER else \
            depthai_nodes_parser(name, config)
        self.name = name
        self.classes = list(config.get("classes") or [])
        self.height, self.width = int(input_shape[2]), int(input_shape[3])

    @classmethod
    def for_archive(cls, archive: Path, **thresholds) -> "TaskDecoder | None":
        """A decoder for the archive's head; None when it has none, or one ``run`` does not draw yet."""
        found = head_of_archive(archive)
        return cls(*found, **thresholds) if found else None

    def decode(self, outputs: dict[str, np.ndarray]) -> Decoded:
        message = to_nn_data(outputs)
        extracted = self.parser.extract(message)
        if self.name == "ClassificationParser":
            scores = self.parser.compute(extracted, is_softmax=self.parser.is_softmax)
            return Decoded("classify", top=self._top(scores))
        if self.name == "YOLOExtendedParser":
            from oakpipe.tasks.yolo_nms import yolo_rows

            end_to_end = extracted.subtype in NMS_FREE_SUBTYPES
            rows = np.asarray(nms_free_rows(extracted) if end_to_end else yolo_rows(extracted), dtype=np.float64)
            if extracted.masks_outputs_values or extracted.v26_mask_coeffs is not None:
                corners = self._corners(rows)
                masks = self._masks(rows, corners, extracted)
                shown = [bool(window.any()) for window in masks.windows]  # as Ultralytics: a box without mask pixels goes
                kept = InstanceMasks(masks.shape, masks.boxes[np.asarray(shown, bool)],
                                     [w for w, keep in zip(masks.windows, shown) if keep])
                return Decoded("segment", detections=self._detections(rows[shown], corners[shown]), masks=kept)
            task = "pose" if extracted.kpts_outputs or extracted.v26_pose_kpts is not None else "detect"
            return Decoded(task, detections=self._detections(rows, self._corners(rows), extracted.n_keypoints))
        if self.name == "SegmentationParser":  # argmax over the class axis; 255 = no class
            class_map = self.parser.compute(extracted, classes_in_one_layer=self.parser.classes_in_one_layer,
                                            background_class=self.parser.background_class)
            return Decoded("segment-semantic", map=np.asarray(class_map), classes=self.classes,
                           shape=(self.height, self.width))
        if self.name == "MapOutputParser":
            return Decoded("depth", map=np.asarray(self.parser.compute(extracted), dtype=np.float32),
                           shape=(self.height, self.width))
        if self.name == SSD_PARSER:  # normalized corners -> input pixels, as YOLO rows are
            rows = self.parser.compute(*extracted).astype(np.float64)
            rows[:, :4] *= [self.width, self.height, self.width, self.height]
            return Decoded("detect", detections=self._detections(rows, self._corners(rows)))
        raise InternalError(f"no decoding for parser {self.name}")

    def _top(self, scores: np.ndarray) -> list[tuple[int, str, float]]:
        scores = np.asarray(scores, dtype=np.float32).ravel()
        order = np.argsort(-scores, kind="stable")[:TOP_K]
        return [(int(i), self._name(int(i)), float(scores[i])) for i in order]

    def _corners(self, rows: np.ndarray) -> np.ndarray:
        """NMS rows' [x1, y1, x2, y2] (input pixels = pixels of the frame shown), clipped to the
        frame as Ultralytics' predict clips them."""
        return np.clip(rows[:, :4], 0, [self.width, self.height, self.width, self.height])

    def _detections(self, rows: np.ndarray, corners: np.ndarray, n_keypoints: int = 0) -> list[Detection]:
        """NMS rows [x1, y1, x2, y2, score, class, keypoints...] -> detections, converted in
        bulk (``tolist``) rather than number by number."""
        class_ids = rows[:, 5].astype(int).tolist()
        scores = rows[:, 4].tolist()
        keypoints: list = [()] * len(rows)
        if n_keypoints and rows.shape[1] >= 6 + 3 * n_keypoints:
            points = rows[:, 6 : 6 + 3 * n_keypoints].reshape(len(rows), n_keypoints, 3).copy()
            points[..., :2] = np.clip(points[..., :2], 0, [self.width, self.height])  # inside the frame, as Ultralytics
            keypoints = [tuple(map(tuple, p)) for p in points.tolist()]
        return [Detection(tuple(box), c, self._name(c), score, kpts)
                for box, c, score, kpts in zip(corners.tolist(), class_ids, scores, keypoints)]

    def _masks(self, rows: np.ndarray, corners: np.ndarray, inputs) -> InstanceMasks:
        """Instance masks as depthai-nodes' ``process_single_mask`` makes them (prototypes x
        coefficients, cropped to the box, resized to the input, thresholded at the head's mask
        confidence), computed inside each box's window (``oakpipe.tasks.masks``)."""
        from oakpipe.tasks.masks import instance_masks

        end_to_end = inputs.v26_mask_coeffs is not None  # rows carry the coefficients (nms_free_rows)
        protos = inputs.v26_protos if end_to_end else inputs.protos_output[0]
        coefficients = [row[6:].astype(np.float32) if end_to_end else per_stride_coefficients(row, inputs)
                        for row in rows]
        x1, y1, x2, y2 = corners.T
        boxes = np.stack([(x1 + x2) / 2 / self.width, (y1 + y2) / 2 / self.height,
                          (x2 - x1) / self.width, (y2 - y1) / self.height], axis=1)
        return instance_masks(protos, coefficients, boxes, inputs.mask_conf, (self.height, self.width))

    def _name(self, class_id: int) -> str:
        return self.classes[class_id] if 0 <= class_id < len(self.classes) else str(class_id)


def depthai_nodes_parser(name: str, config: dict) -> tuple:
    """(pipeline, depthai-nodes' parser ``name`` built from ``config``): a host-only pipeline
    that is never started; it only owns the node, so the decoder keeps both."""
    import depthai as dai

    parser_class = getattr(import_depthai_nodes().node, name, None)
    if parser_class is None:
        raise UserError(f"the archive's head names parser {name!r}, which depthai-nodes does not have",
                        "update depthai-nodes, or export the model again with oakpipe")
    pipeline = dai.Pipeline(False)
    return pipeline, pipeline.create(parser_class).build(config)


def per_stride_coefficients(row: np.ndarray, inputs) -> np.ndarray:
    """A per-stride segmentation row's mask coefficients: the row carries its head, anchor and cell."""
    head, anchor, x, y = row[6:10].astype(int)
    length = inputs.protos_len
    return inputs.masks_outputs_values[head][0, anchor * length : (anchor + 1) * length, y, x]


def nms_free_rows(inputs) -> np.ndarray:
    """An end-to-end (NMS-free) head's detections, selected as Ultralytics' predict selects them.

    Boxes come from the device (yolo26: x1, y1, x2, y2 in pixels) or from depthai-nodes' grid
    decode of each stride (yolov10). Ultralytics then keeps the max_det anchors with the best
    class score, ranks all their class scores and keeps the max_det best (so one anchor may give
    boxes of two classes), and drops those at or under the threshold; no NMS. depthai-nodes'
    own compute keeps one class per anchor (Ultralytics' ``agnostic_nms=True``): on the random-
    weight yolov10n of the tests that halves the boxes at a 0.005 threshold, hence this step.
    """
    from depthai_nodes.node.parsers.utils import xywh_to_xyxy
    from depthai_nodes.node.parsers.utils.yolo import parse_yolo_output

    if inputs.subtype == "yolo26":
        table = inputs.outputs_values[0][0].astype(np.float64)  # (anchors, 5 + classes)
        boxes = table[:, :4]
    else:  # it writes the decoded boxes into its input: copies
        table = np.concatenate([
            parse_yolo_output(out.copy(), stride, inputs.n_classes + 5, det_mode=True, subtype=inputs.subtype)[0]
            for out, stride in zip(inputs.outputs_values, inputs.strides)]).astype(np.float64)
        boxes = xywh_to_xyxy(table[:, :4])  # from (cx, cy, w, h) in pixels
    rows, anchors = select_top(boxes, table[:, 5:], inputs.conf_threshold, inputs.max_det)
    extra = inputs.v26_pose_kpts if inputs.v26_pose_kpts is not None else inputs.v26_mask_coeffs
    if extra is not None:  # each box's keypoints (x, y in pixels, visibility) or mask coefficients
        rows = np.column_stack([rows, extra[0][anchors].astype(np.float64)])
    return rows


def select_top(boxes: np.ndarray, scores: np.ndarray, conf: float, max_det: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows [x1, y1, x2, y2, score, class] by Ultralytics' end-to-end rule (``Detect.postprocess``
    then the predictor's threshold): the max_det anchors of best class score, the max_det best
    of their (anchor, class) scores, those above ``conf``; and each row's anchor.

    Scores at or under ``conf`` are set aside first: they would be dropped at the end, and
    every score above it ranks before them, so the rows are the same (a full sort of the
    anchors x classes scores costs ~7 ms a frame at 320x320)."""
    best = scores.max(axis=1)
    candidates = np.flatnonzero(best > conf)
    anchors = candidates[np.argsort(-best[candidates], kind="stable")[:max_det]]
    rank, classes = np.nonzero(scores[anchors] > conf)  # row-major, as Ultralytics flattens them
    values = scores[anchors[rank], classes]
    top = np.argsort(-values, kind="stable")[:max_det]
    chosen = anchors[rank[top]]
    rows = np.column_stack([boxes[chosen], values[top], classes[top]]) if len(top) else np.zeros((0, 6))
    return rows, chosen


def import_depthai_nodes():
    """depthai-nodes, imported with a DEPTHAI_LEVEL it understands.

    oakpipe sets depthai's level to ``error``; depthai-nodes reads the same variable at
    import, accepts only its own names (and its ``ERR`` then fails in Python's logging), so
    the import sees ``WARN`` and its logger is set to ERROR afterwards.
    """
    import logging

    level = os.environ.get("DEPTHAI_LEVEL")
    if level is not None and level.lower() in ("error", "err"):
        os.environ["DEPTHAI_LEVEL"] = "WARN"
    try:
        import depthai_nodes
        import depthai_nodes.node
    except ImportError as exc:
        raise UserError("decoding this model's outputs needs Luxonis' depthai-nodes",
                        "pip install 'oakpipe[decode]' (or pip install --no-deps depthai-nodes)") from exc
    finally:
        if level is not None:
            os.environ["DEPTHAI_LEVEL"] = level
    if level is not None and level.lower() in ("error", "err"):
        logging.getLogger("depthai-nodes").setLevel(logging.ERROR)
    return depthai_nodes


def to_nn_data(outputs: dict[str, np.ndarray]):
    """A ``dai.NNData`` holding ``outputs`` (what a device NN node would send)."""
    import depthai as dai

    message = dai.NNData()
    for name, array in outputs.items():
        # the overload without a data type stores float32 as FP32 too, in a third of the time (0.23 ms
        # against 0.74 ms for a 1x85x52x52 tensor), and getTensor reads it back twice as fast
        message.addTensor(name, np.ascontiguousarray(array, dtype=np.float32))
    return message
