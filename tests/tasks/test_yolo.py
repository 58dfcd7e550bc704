"""An Ultralytics best.pt through oakpipe: archive head, decoding, and the match with
Ultralytics' own ``predict`` on the same image and thresholds.

The model has random weights with recalibrated BatchNorm statistics (no trained weights can
be downloaded here), so its class scores stay low on photos (under 0.2 on the
astronaut at 320x320): the match test lowers the confidence threshold to CONF so that it
compares about fifty boxes rather than one.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.tasks.conftest import SIZE

pytestmark = pytest.mark.toolchain  # the export runs every stage, the blob included

CONF = 0.005  # random-weight model: see the module docstring (about 50 boxes on the astronaut)
IOU = 0.45  # the archive head's NMS threshold, passed to Ultralytics too


def photo_frame():
    """The astronaut as the camera would deliver it at the network size (BGR U8 320x320)."""
    import cv2
    from skimage import data

    from oakpipe.live.host import camera_frame

    frame, planar = camera_frame(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), SIZE, SIZE)
    return frame, planar


def test_archive_head_follows_luxonis_schema(yolo_export):
    import depthai as dai
    from luxonis_ml.nn_archive.config import Config

    from oakpipe.live.archive_input import read_config

    config = read_config(yolo_export.archive)[0]
    Config(**config)  # luxonis-ml's own validation of the whole config
    head = config["model"]["heads"][0]
    assert head["parser"] == "YOLOExtendedParser"
    assert head["metadata"]["classes"] == [f"thing{i}" for i in range(80)]
    assert head["metadata"]["strides"] == [8, 16, 32]
    parsed = dai.NNArchiveVersionedConfig(str(yolo_export.archive)).getConfig()
    assert parsed.model.heads[0].parser == "YOLOExtendedParser"


def iou(a, b) -> float:
    lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(rb - lt, 0, None)))
    union = float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter)
    return inter / union if union > 0 else 0.0


def matched(ours: list, theirs: list, tol_px: float = 2.0) -> int:
    """How many of ``ours`` have a same-class box in ``theirs`` with every corner within tol_px."""
    count, used = 0, set()
    for box, cls in ours:
        for j, (other, other_cls) in enumerate(theirs):
            if j not in used and cls == other_cls and np.abs(np.subtract(box, other)).max() <= tol_px:
                used.add(j)
                count += 1
                break
    return count


def test_decoded_detections_match_ultralytics_predict(yolo_checkpoint, yolo_export):
    """The exported ONNX (FP32, onnxruntime) through oakpipe's decoding vs Ultralytics' predict."""
    import onnxruntime as ort
    from ultralytics import YOLO

    from oakpipe.tasks.decode import TaskDecoder

    frame, _ = photo_frame()
    x = np.ascontiguousarray((frame[..., ::-1].astype(np.float32) / 255.0).transpose(2, 0, 1)[None])
    session = ort.InferenceSession(str(yolo_export.onnx), providers=["CPUExecutionProvider"])
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": x})))
    decoder = TaskDecoder.for_archive(yolo_export.archive, conf=CONF, iou=IOU)
    ours = [(d.box, d.class_id) for d in decoder.decode(outputs).detections]

    predicted = YOLO(str(yolo_checkpoint)).predict(frame, imgsz=SIZE, conf=CONF, iou=IOU, verbose=False)[0]
    theirs = [(tuple(b), int(c)) for b, c in zip(predicted.boxes.xyxy.numpy(), predicted.boxes.cls.numpy())]
    assert len(theirs) >= 10, f"too few boxes to compare ({len(theirs)}): lower CONF"
    # Not 100%: depthai-nodes' NMS measures areas with a +1 pixel (Ultralytics' does not), so
    # a box whose IoU with a better one is right at IOU can be kept by one and not the other.
    assert matched(ours, theirs) >= 0.95 * len(ours), (len(ours), len(theirs), ours[:3], theirs[:3])
    assert matched(theirs, ours) >= 0.95 * len(theirs), (len(ours), len(theirs))


def test_run_writes_results_and_draws_boxes(yolo_export, tmp_path):
    import cv2

    from oakpipe.live import run_export
    from oakpipe.live.options import RunOptions

    image = tmp_path / "astronaut.png"
    cv2.imwrite(str(image), photo_frame()[0])
    results = tmp_path / "out.jsonl"
    pictures = []
    options = RunOptions(backend="host", source=str(image), frames=2, display="none", results=results, conf=CONF)
    summary = run_export(yolo_export.folder, options, on_frame=lambda item, picture: pictures.append((item.frame, picture)))
    assert summary.frames == 2
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert [line["sequence"] for line in lines] == [0, 1]
    first = lines[0]
    assert first["task"] == "detect" and first["detections"]
    det = first["detections"][0]
    assert set(det) == {"box", "class_id", "name", "score"} and det["name"] == f"thing{det['class_id']}"
    assert det["score"] >= CONF
    frame, picture = pictures[0]
    assert picture.shape == frame.shape and not np.array_equal(picture, frame)  # boxes were drawn
    assert not list(tmp_path.glob(".out.jsonl.partial-*"))  # renamed into place
