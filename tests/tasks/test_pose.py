"""An Ultralytics pose best.pt: keypoints decoded on the device graph, boxes and keypoints
decoded by depthai-nodes on the host, compared with Ultralytics' predict.

Random weights, BatchNorm recalibrated on photos (as in test_yolo.py): the threshold is low
so that there are boxes to compare.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.tasks.conftest import SIZE
from tests.tasks.test_yolo import IOU, photo_frame

pytestmark = pytest.mark.toolchain

CONF = 0.005


MODELS = {  # fixture prefix: output names, predict settings (YOLO26: its NMS-free branch, nms=False)
    "pose": (["kpt_output1", "kpt_output2", "kpt_output3"], {"iou": IOU}),
    "y26pose": (["kpt_output"], {"nms": False}),
}


@pytest.mark.parametrize("model", list(MODELS))
def test_pose_boxes_and_keypoints_match_ultralytics_predict(model, request):
    import onnxruntime as ort
    from luxonis_ml.nn_archive.config import Config
    from ultralytics import YOLO

    from oakpipe.live.archive_input import read_config
    from oakpipe.tasks.decode import TaskDecoder

    pose_checkpoint, pose_export = (request.getfixturevalue(f"{model}_{kind}") for kind in ("checkpoint", "export"))
    outputs, settings = MODELS[model]
    config = read_config(pose_export.archive)[0]
    Config(**config)
    metadata = config["model"]["heads"][0]["metadata"]
    assert metadata["n_keypoints"] == 17 and metadata["keypoints_outputs"] == outputs
    frame, _ = photo_frame()
    x = np.ascontiguousarray((frame[..., ::-1].astype(np.float32) / 255.0).transpose(2, 0, 1)[None])
    session = ort.InferenceSession(str(pose_export.onnx), providers=["CPUExecutionProvider"])
    raw = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": x})))
    ours = TaskDecoder.for_archive(pose_export.archive, conf=CONF, iou=IOU).decode(raw).detections

    predicted = YOLO(str(pose_checkpoint)).predict(frame, imgsz=SIZE, conf=CONF, verbose=False, **settings)[0]
    boxes, classes = predicted.boxes.xyxy.numpy(), predicted.boxes.cls.numpy()
    points = predicted.keypoints.data.numpy()  # (n, 17, 3): x, y, visibility
    assert len(boxes) >= 5, f"too few boxes to compare ({len(boxes)}): lower CONF"
    found = 0
    for det in ours:
        close = [j for j in range(len(boxes)) if classes[j] == det.class_id
                 and np.abs(np.subtract(det.box, boxes[j])).max() <= 2.0]
        if close:
            found += 1
            mine = np.array(det.keypoints)
            # both clipped to the frame, in its pixels; 2 px as for boxes
            np.testing.assert_allclose(mine[:, :2], points[close[0]][:, :2], atol=2.0)
            np.testing.assert_allclose(mine[:, 2], points[close[0]][:, 2], atol=1e-3)  # sigmoid, float32
    assert found >= 0.95 * len(ours) and found >= 0.95 * len(boxes), (found, len(ours), len(boxes))
