"""An Ultralytics segmentation best.pt: boxes and instance masks decoded with depthai-nodes
vs Ultralytics' predict (random weights, BatchNorm recalibrated: low threshold, as in
test_yolo.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tasks.conftest import SIZE
from tests.tasks.test_yolo import IOU, photo_frame

pytestmark = pytest.mark.toolchain

CONF = 0.005
MASK_IOU = 0.8  # both crop prototypes x coefficients to the box at 1/4 resolution; resampling differs


MODELS = {"seg": {"iou": IOU}, "y26seg": {"nms": False}}  # fixture prefix: predict settings (YOLO26: NMS-free)


@pytest.mark.parametrize("model", list(MODELS))
def test_segment_boxes_and_masks_match_ultralytics_predict(model, request):
    import onnxruntime as ort
    from luxonis_ml.nn_archive.config import Config
    from ultralytics import YOLO

    from oakpipe.live.archive_input import read_config
    from oakpipe.tasks.decode import TaskDecoder

    seg_checkpoint, seg_export = (request.getfixturevalue(f"{model}_{kind}") for kind in ("checkpoint", "export"))
    config = read_config(seg_export.archive)[0]
    Config(**config)
    assert config["model"]["heads"][0]["metadata"]["protos_outputs"] == "protos_output"
    frame, _ = photo_frame()
    x = np.ascontiguousarray((frame[..., ::-1].astype(np.float32) / 255.0).transpose(2, 0, 1)[None])
    session = ort.InferenceSession(str(seg_export.onnx), providers=["CPUExecutionProvider"])
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": x})))
    decoded = TaskDecoder.for_archive(seg_export.archive, conf=CONF, iou=IOU).decode(outputs)

    predicted = YOLO(str(seg_checkpoint)).predict(frame, imgsz=SIZE, conf=CONF, verbose=False, **MODELS[model])[0]
    boxes, classes = predicted.boxes.xyxy.numpy(), predicted.boxes.cls.numpy()
    theirs = predicted.masks.data.numpy() > 0.5  # (n, SIZE, SIZE)
    assert len(boxes) >= 5, f"too few boxes to compare ({len(boxes)}): lower CONF"
    found, ious = 0, []
    for i, det in enumerate(decoded.detections):
        close = [j for j in range(len(boxes)) if classes[j] == det.class_id
                 and np.abs(np.subtract(det.box, boxes[j])).max() <= 2.0]
        if close:
            found += 1
            mine, other = decoded.masks[i], theirs[close[0]]
            union = np.logical_or(mine, other).sum()
            if union:
                ious.append(np.logical_and(mine, other).sum() / union)
    assert found >= 0.95 * len(decoded.detections) and found >= 0.95 * len(boxes), (found, len(boxes))
    assert ious and np.median(ious) >= MASK_IOU, sorted(ious)[:5]
