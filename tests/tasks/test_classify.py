"""An Ultralytics classifier (best.pt) through oakpipe: archive head and top-5 vs PyTorch.

Random weights, BatchNorm recalibrated on photos (no trained weights can be downloaded):
the top-5 is still a deterministic function of the image, which is all this compares.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.tasks.conftest import CLS_SIZE

pytestmark = pytest.mark.toolchain


def test_classifier_archive_head_and_top5_match_pytorch(cls_checkpoint, cls_export):
    import cv2
    import onnxruntime as ort
    import torch
    from luxonis_ml.nn_archive.config import Config
    from skimage import data

    from oakpipe.live.archive_input import read_config
    from oakpipe.tasks.decode import TaskDecoder
    from oakpipe.tasks.ultralytics_model import load_model

    config = read_config(cls_export.archive)[0]
    Config(**config)
    head = config["model"]["heads"][0]
    assert head["parser"] == "ClassificationParser" and head["metadata"]["classes"][:2] == ["kind0", "kind1"]

    rgb = cv2.resize(data.chelsea(), (CLS_SIZE, CLS_SIZE), interpolation=cv2.INTER_AREA)
    x = np.ascontiguousarray((rgb.astype(np.float32) / 255.0).transpose(2, 0, 1)[None])
    session = ort.InferenceSession(str(cls_export.onnx), providers=["CPUExecutionProvider"])
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": x})))
    top = TaskDecoder.for_archive(cls_export.archive).decode(outputs).top

    with torch.no_grad():
        probs = load_model(cls_checkpoint)(torch.from_numpy(x))
    probs = (probs[0] if isinstance(probs, (tuple, list)) else probs)[0].numpy()
    expected = np.argsort(-probs, kind="stable")[:5]
    assert [i for i, _, _ in top] == expected.tolist()
    assert [n for _, n, _ in top] == [f"kind{i}" for i in expected]
    # onnxruntime vs PyTorch FP32 on the same tensor: float rounding only.
    np.testing.assert_allclose([s for _, _, s in top], probs[expected], rtol=1e-3, atol=1e-6)
