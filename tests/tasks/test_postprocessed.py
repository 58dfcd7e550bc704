"""A detector that post-processes inside (torchvision's RetinaNet) is refused with the route out.

The route itself is what oakpipe now takes for torchvision's SSDs (tests/tasks/test_ssd.py
matches its decoded detections with torchvision's own)."""

from __future__ import annotations

import pytest
import torch

from oakpipe.errors import ModelError
from oakpipe.tasks.postprocessed import is_postprocessed_detections
from tests.fixtures import torchvision_shim


def test_recognises_torchvision_detection_output_only():
    rows = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}]
    assert is_postprocessed_detections(rows)
    assert not is_postprocessed_detections([{"boxes": torch.zeros(0, 4)}])  # not a detection dict
    assert not is_postprocessed_detections([torch.zeros(1)])
    assert not is_postprocessed_detections([])


def test_retinanet_is_refused_naming_the_raw_head_route(tmp_path):
    torchvision_shim.install()
    detection = pytest.importorskip("torchvision.models.detection")
    from oakpipe import api

    torch.manual_seed(0)
    model = detection.retinanet_resnet50_fpn(weights=None, weights_backbone=None, min_size=128, max_size=128).eval()
    out = tmp_path / "retinanet"
    with pytest.raises(ModelError) as caught:
        api.convert(model, input_shape=(1, 3, 128, 128), out=out, verify=False)
    assert "post-processed detections" in caught.value.message and "SSDlite" in caught.value.message
    assert "model.head(list(model.backbone(x).values()))" in caught.value.hint
    assert not list(out.glob("*.onnx"))  # no model file written (the manifest records the stage)
