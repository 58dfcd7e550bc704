"""A detector that post-processes inside (torchvision's SSDlite) is refused with the route out."""

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


def test_ssdlite_is_refused_naming_the_raw_head_route(tmp_path):
    torchvision_shim.install()
    detection = pytest.importorskip("torchvision.models.detection")
    from oakpipe import api

    torch.manual_seed(0)
    model = detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None).eval()
    out = tmp_path / "ssd"
    with pytest.raises(ModelError) as caught:
        api.convert(model, input_shape=(1, 3, 320, 320), out=out, verify=False)
    assert "post-processed detections" in caught.value.message
    assert "model.head(list(model.backbone(x).values()))" in caught.value.hint
    assert not list(out.glob("*.onnx"))  # no model file written (the manifest records the stage)


def matched(ours: dict, theirs: dict, pixels: float) -> int:
    """How many of ``ours`` have a box of ``theirs`` with the same label, every edge within ``pixels``."""
    count = 0
    for box, label in zip(ours["boxes"], ours["labels"]):
        same = (theirs["labels"] == label) & ((theirs["boxes"] - box).abs().amax(dim=1) <= pixels)
        count += bool(same.any())
    return count


def test_the_named_route_reproduces_torchvisions_detections(tmp_path):
    """RawHead exported by oakpipe, decoded on the host with the detector's own anchors, box
    coder and NMS, gives torchvision's own detections on a photo."""
    torchvision_shim.install()
    pytest.importorskip("torchvision")
    import onnxruntime as ort

    from oakpipe.options import ConvertOptions
    from oakpipe.stages.onnx_export import export_torch
    from tests.fixtures.ssd_models import RawHead, ssdlite
    from tests.fixtures.ultralytics_models import photos, recalibrate_batchnorm

    detector = ssdlite()
    recalibrate_batchnorm(RawHead(detector), 320)  # BatchNorm on photos (random weights otherwise)
    detector.eval()
    detector.score_thresh = 0.02  # random weights score low (uniform softmax over 91 classes is 0.011)
    path = tmp_path / "ssd_head.onnx"
    export_torch(RawHead(detector), ConvertOptions(model="ssd", input_shape=(1, 3, 320, 320)), path)

    image = torch.from_numpy(photos(320)[0]).permute(2, 0, 1).float() / 255.0
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits, regressions = session.run(None, {"input": image[None].numpy()})
    with torch.no_grad():
        expected = detector([image])[0]
        images, _ = detector.transform([image])
        features = list(detector.backbone(images.tensors).values())
        anchors = detector.anchor_generator(images, features)
        head = {"cls_logits": torch.from_numpy(logits), "bbox_regression": torch.from_numpy(regressions)}
        ours = detector.postprocess_detections(head, anchors, images.image_sizes)
        ours = detector.transform.postprocess(ours, images.image_sizes, [(320, 320)])[0]
    assert len(expected["boxes"]) > 10, "too few detections to compare"
    # 2 px: the brief's bound for one box drawn the same; onnxruntime's float32 sums differ from
    # PyTorch's in the last bits, which can reorder near-tied scores but not move boxes visibly.
    assert matched(ours, expected, 2.0) >= 0.95 * len(ours["boxes"])
    assert matched(expected, ours, 2.0) >= 0.95 * len(expected["boxes"])
