"""An Ultralytics best.pt through oakpipe: archive head, decoding, and the match with
Ultralytics' own ``predict`` on the same image and thresholds.

The model has random weights with recalibrated BatchNorm statistics (no trained weights can
be downloaded here), so its class scores stay low on photos (under 0.2 on the
astronaut at 320x320): the match test lowers the confidence threshold to CONF so that it
compares about fifty boxes rather than one. yolo11n runs NMS; yolov10n and yolo26n are
end-to-end (NMS-free) and compared with ``predict(nms=False)``, the branch oakpipe exports.
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


def onnx_outputs(export) -> dict:
    """The exported ONNX (FP32, onnxruntime) on the astronaut, as the camera delivers it."""
    import onnxruntime as ort

    frame, _ = photo_frame()
    x = np.ascontiguousarray((frame[..., ::-1].astype(np.float32) / 255.0).transpose(2, 0, 1)[None])
    session = ort.InferenceSession(str(export.onnx), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": x})))


MODELS = {  # fixture prefix: predict settings. End-to-end heads: Ultralytics' NMS-free branch (nms=False)
    "yolo": {"iou": IOU},
    "v10": {"nms": False},
    "y26": {"nms": False},
}


@pytest.mark.parametrize("model", list(MODELS))
def test_decoded_detections_match_ultralytics_predict(model, request):
    """The exported ONNX (FP32, onnxruntime) through oakpipe's decoding vs Ultralytics' predict."""
    from ultralytics import YOLO

    from oakpipe.tasks.decode import TaskDecoder

    checkpoint, export = request.getfixturevalue(f"{model}_checkpoint"), request.getfixturevalue(f"{model}_export")
    decoder = TaskDecoder.for_archive(export.archive, conf=CONF, iou=IOU)  # the IoU is ignored without NMS
    ours = [(d.box, d.class_id) for d in decoder.decode(onnx_outputs(export)).detections]

    frame, _ = photo_frame()
    predicted = YOLO(str(checkpoint)).predict(frame, imgsz=SIZE, conf=CONF, verbose=False, **MODELS[model])[0]
    theirs = [(tuple(b), int(c)) for b, c in zip(predicted.boxes.xyxy.numpy(), predicted.boxes.cls.numpy())]
    assert len(theirs) >= 10, f"too few boxes to compare ({len(theirs)}): lower CONF"
    # Not 100% with NMS: depthai-nodes' NMS measures areas with a +1 pixel (Ultralytics' does not), so
    # a box whose IoU with a better one is right at IOU can be kept by one and not the other.
    assert matched(ours, theirs) >= 0.95 * len(ours), (len(ours), len(theirs), ours[:3], theirs[:3])
    assert matched(theirs, ours) >= 0.95 * len(theirs), (len(ours), len(theirs))


PARSER_CONF = 0.01


@pytest.mark.parametrize("model, subtype, outputs", [
    ("v10", "yolov10", ["output1_yolov10", "output2_yolov10", "output3_yolov10"]),
    ("y26", "yolo26", ["output_yolo26"]),
])
def test_an_nms_free_archive_is_read_by_depthai_nodes_own_parser(model, subtype, outputs, request):
    """The archive names depthai-nodes' subtype with IoU 1.0 (no NMS), and its own parser,
    configured from the archive as ParsingNeuralNetwork configures it, decodes the outputs:
    one class per anchor (Ultralytics' agnostic selection), so its boxes are among oakpipe's.
    At PARSER_CONF: below it the random-weight yolo26n has boxes with y2 < y1 (its one-to-one
    distances are raw regressions), on which depthai-nodes' box conversion raises."""
    from luxonis_ml.nn_archive.config import Config

    from oakpipe.live.archive_input import read_config
    from oakpipe.tasks.decode import TaskDecoder, head_of_archive, to_nn_data

    export = request.getfixturevalue(f"{model}_export")
    config = read_config(export.archive)[0]
    Config(**config)  # luxonis-ml's own validation of the whole config
    head = config["model"]["heads"][0]
    assert (head["parser"], head["outputs"], head["metadata"]["subtype"]) == ("YOLOExtendedParser", outputs, subtype)
    assert head["metadata"]["iou_threshold"] == 1.0 and head["metadata"]["max_det"] == 300
    head_config, shape = head_of_archive(export.archive)
    raw = onnx_outputs(export)
    parser = TaskDecoder(head_config, shape, conf=PARSER_CONF).parser
    theirs = parser.compute(parser.extract(to_nn_data(raw)))  # normalized (cx, cy, w, h), clipped to [0, 1]
    ours = TaskDecoder(head_config, shape, conf=PARSER_CONF).decode(raw).detections
    assert len(theirs["bboxes"]) >= 10 and len(ours) >= len(theirs["bboxes"])
    ours_xyxy = [(d.box, d.class_id) for d in ours]
    for (cx, cy, w, h), label in zip(theirs["bboxes"], theirs["labels"]):
        box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]) * SIZE
        inside = all(0 < v < SIZE for v in box)  # the parser clips centre and size, not corners: edge boxes move
        assert not inside or matched([(tuple(box), int(label))], ours_xyxy) == 1, (box, label)


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
    assert not list(tmp_path.glob(".out.tmp-*"))  # renamed into place
