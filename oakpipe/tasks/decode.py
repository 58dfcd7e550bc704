"""Raw network outputs -> detections / top-k labels, with Luxonis' depthai-nodes parsers.

The parser is the one the NN Archive's head names (``YOLOExtendedParser``,
``ClassificationParser``), configured from the head exactly as depthai-nodes'
``ParsingNeuralNetwork`` configures it (``decode_head`` on depthai's own parse of the
archive). Both backends hand their outputs here as a ``dai.NNData`` (the host emulator
builds one from OpenVINO's outputs), so the camera and the emulator decode with the same
code; the parser's ``extract``/``compute`` run in this thread, in a host-only pipeline that
is never started, so no frame waits on a queue. No parser is written here: depthai-nodes
has one for each head oakpipe writes. Two of its YOLO steps, the NMS and the instance masks,
run with less work (``oakpipe.tasks.yolo_nms``, ``oakpipe.tasks.masks``), tested to give
its results exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from oakpipe.errors import InternalError, UserError
from oakpipe.tasks.masks import InstanceMasks

TOP_K = 5
DECODED_PARSERS = ("YOLOExtendedParser", "ClassificationParser", "SegmentationParser", "MapOutputParser")


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
        import depthai as dai

        parsers = import_depthai_nodes().node

        name = head_config["parser"]
        parser_class = getattr(parsers, name, None)
        if parser_class is None:
            raise UserError(f"the archive's head names parser {name!r}, which depthai-nodes does not have",
                            "update depthai-nodes, or export the model again with oakpipe")
        config = dict(head_config)
        if conf is not None:
            config["conf_threshold"] = conf
        if iou is not None:
            config["iou_threshold"] = iou
        self.pipeline = dai.Pipeline(False)  # host-only and never started: it only owns the node
        self.parser = self.pipeline.create(parser_class).build(config)
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

            rows = np.asarray(yolo_rows(extracted), dtype=np.float64)
            if extracted.masks_outputs_values:
                corners = self._corners(rows)
                return Decoded("segment", detections=self._detections(rows, corners),
                               masks=self._masks(rows, corners, extracted))
            task = "pose" if extracted.kpts_outputs else "detect"
            return Decoded(task, detections=self._detections(rows, self._corners(rows), extracted.n_keypoints))
        if self.name == "SegmentationParser":  # argmax over the class axis; 255 = no class
            class_map = self.parser.compute(extracted, classes_in_one_layer=self.parser.classes_in_one_layer,
                                            background_class=self.parser.background_class)
            return Decoded("segment-semantic", map=np.asarray(class_map), classes=self.classes,
                           shape=(self.height, self.width))
        if self.name == "MapOutputParser":
            return Decoded("depth", map=np.asarray(self.parser.compute(extracted), dtype=np.float32),
                           shape=(self.height, self.width))
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

        length = inputs.protos_len
        coefficients = []
        for head, anchor, x, y in rows[:, 6:10].astype(int).tolist():
            coefficients.append(inputs.masks_outputs_values[head][0, anchor * length : (anchor + 1) * length, y, x])
        x1, y1, x2, y2 = corners.T
        boxes = np.stack([(x1 + x2) / 2 / self.width, (y1 + y2) / 2 / self.height,
                          (x2 - x1) / self.width, (y2 - y1) / self.height], axis=1)
        return instance_masks(inputs.protos_output[0], coefficients, boxes, inputs.mask_conf, (self.height, self.width))

    def _name(self, class_id: int) -> str:
        return self.classes[class_id] if 0 <= class_id < len(self.classes) else str(class_id)


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
