"""torchvision's SSDlite through oakpipe: the cut, oakpipe's own SSD parser, the archive head,
and the match with torchvision's own detections on the same image.

The detector has random weights (no trained weights can be downloaded here) with BatchNorm
statistics recalibrated on photos (tests/fixtures/ssd_models.calibrated_ssdlite): its class
scores then spread as a trained model's do (up to ~0.5 on the astronaut) instead of giving
every class 1/91. It is compared at its own thresholds (score 0.001, NMS 0.55, 300
detections): torchvision and oakpipe both return 300 boxes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.fixtures import torchvision_shim
from tests.tasks.test_yolo import matched

SIZE = 320  # ssdlite320's fixed size
PIXELS = 2.0  # the brief's bound for a box drawn the same: every corner within 2 px of the input


@pytest.fixture(scope="module")
def detector():
    torchvision_shim.install()
    pytest.importorskip("torchvision")
    from tests.fixtures.ssd_models import calibrated_ssdlite

    return calibrated_ssdlite()


@pytest.fixture(scope="module")
def ssd_export(detector, tmp_path_factory):
    """``oakpipe.convert(detector)``: every stage, the blob and verify included (once per suite)."""
    from oakpipe import api

    out = tmp_path_factory.mktemp("ssd_export") / "ssdlite"
    return api.convert(detector, input_shape=(1, 3, SIZE, SIZE), out=out, verify=True)


def photo_rgb() -> np.ndarray:
    """The astronaut at 320x320, RGB uint8 (the frame the camera preview would show)."""
    from tests.fixtures.ultralytics_models import photos

    return photos(SIZE)[0]


def torchvision_detections(detector, rgb: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """torchvision's own eval-mode output on the image: (box in pixels, label) rows."""
    import torch

    image = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0
    with torch.no_grad():
        out = detector([image])[0]
    return list(zip(out["boxes"].numpy(), out["labels"].numpy().tolist()))


def assert_same_detections(ours: list, theirs: list) -> None:
    assert len(theirs) >= 10, f"too few detections to compare ({len(theirs)})"
    assert matched(ours, theirs, PIXELS) >= 0.95 * len(ours), (len(ours), len(theirs), matched(ours, theirs, PIXELS))
    assert matched(theirs, ours, PIXELS) >= 0.95 * len(theirs), (len(ours), len(theirs), matched(theirs, ours, PIXELS))


# -- without the toolchain ------------------------------------------------------------------------

def test_the_cut_and_parser_give_torchvisions_detections(detector):
    """PyTorch FP32: the cut's in-graph anchor decode and softmax, decoded by oakpipe's parser,
    against torchvision's forward (its transform, box coder, per-class top-k and NMS)."""
    import torch

    from oakpipe.tasks.decode import TaskDecoder
    from oakpipe.tasks.torchvision_ssd import cut_if_ssd
    from oakpipe.verify.task_check import head_config

    cut = cut_if_ssd(detector, (1, 3, SIZE, SIZE))
    assert cut is not detector and cut.oakpipe_task.subtype == "ssd"
    assert cut.oakpipe_preprocessing.mean == (127.5,) * 3 and cut.oakpipe_preprocessing.scale == (127.5,) * 3
    rgb = photo_rgb()
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1.0  # SSDlite's normalisation
    with torch.no_grad():
        outputs = {k: v.numpy() for k, v in cut(x).items()}
    decoder = TaskDecoder(head_config(cut.oakpipe_task.to_dict(), (1, 3, SIZE, SIZE)), [1, 3, SIZE, SIZE])
    decoded = decoder.decode(outputs)
    ours = [(d.box, d.class_id) for d in decoded.detections]
    theirs = torchvision_detections(detector, rgb)
    assert len(ours) == len(theirs) == detector.detections_per_img
    assert_same_detections(ours, theirs)
    assert decoded.detections[0].name == cut.oakpipe_task.names[decoded.detections[0].class_id]


def test_parser_equals_torchvisions_postprocess_with_many_suppressions(detector):
    """torchvision's own ``postprocess_detections`` on random head outputs, at a low NMS
    threshold and small top-k (many boxes suppressed, many cut), against oakpipe's parser fed
    the same boxes normalized: the same rows in the same order."""
    import torch
    from torchvision.models.detection import _utils as det_utils

    from oakpipe.tasks.ssd_parser import SSDParser
    from oakpipe.tasks.torchvision_ssd import normalized_anchors

    generator = torch.Generator().manual_seed(1)
    anchors = normalized_anchors(detector, (1, 3, SIZE, SIZE))
    corners = torch.cat([anchors[:, :2] - anchors[:, 2:] / 2, anchors[:, :2] + anchors[:, 2:] / 2], 1) * SIZE
    head = {"cls_logits": torch.randn(1, len(anchors), 91, generator=generator) * 3,
            "bbox_regression": torch.randn(1, len(anchors), 4, generator=generator)}
    saved = detector.nms_thresh, detector.topk_candidates, detector.detections_per_img, detector.score_thresh
    try:
        detector.nms_thresh, detector.topk_candidates, detector.detections_per_img, detector.score_thresh = \
            0.2, 20, 150, 0.05
        expected = detector.postprocess_detections(head, [corners], [(SIZE, SIZE)])[0]
    finally:
        detector.nms_thresh, detector.topk_candidates, detector.detections_per_img, detector.score_thresh = saved
    decoded = det_utils.BoxCoder((10.0, 10.0, 5.0, 5.0)).decode_single(head["bbox_regression"][0], corners)
    boxes = (decoded.clamp(0, SIZE) / SIZE).numpy()
    scores = torch.softmax(head["cls_logits"][0], -1).numpy()
    rows = SSDParser("boxes", "scores", 0.05, 0.2, max_det=150, topk_candidates=20).compute(boxes, scores)
    assert len(expected["boxes"]) == 150 and len(rows) == 150
    np.testing.assert_array_equal(rows[:, 5], expected["labels"].numpy())
    # float32 scores and corners: one computed as torchvision does, the other normalized, so a few ulps apart
    np.testing.assert_allclose(rows[:, 4], expected["scores"].numpy(), rtol=1e-6)
    np.testing.assert_allclose(rows[:, :4] * SIZE, expected["boxes"].numpy(), atol=1e-3)


def test_parser_keeps_torchvisions_rules():
    """Per-class threshold (strictly above) and top-k, class-aware NMS (IoU strictly above),
    background never a detection, the best max_det overall."""
    from oakpipe.tasks.ssd_parser import SSDParser

    boxes = np.array([[0.1, 0.1, 0.5, 0.5], [0.1, 0.1, 0.5, 0.52], [0.6, 0.6, 0.9, 0.9], [0.6, 0.6, 0.9, 0.9]],
                     np.float32)
    scores = np.array([[0.0, 0.9, 0.05], [0.0, 0.8, 0.7], [0.9, 0.3, 0.2], [0.0, 0.2, 0.6]], np.float32)
    parser = SSDParser("boxes", "scores", conf_threshold=0.2, iou_threshold=0.5, max_det=10, topk_candidates=10)
    rows = parser.compute(boxes, scores)
    found = [(int(r[5]), round(float(r[4]), 2)) for r in rows]
    # class 1: box 1 suppressed by box 0 (IoU 0.95), box 2 kept, box 3 (0.2) not above the threshold;
    # class 2: boxes 1 and 3 kept (another class's overlap suppresses nothing); class 0 is the background
    assert found == [(1, 0.9), (2, 0.7), (2, 0.6), (1, 0.3)]
    assert len(SSDParser("boxes", "scores", 0.2, 0.5, max_det=2, topk_candidates=10).compute(boxes, scores)) == 2
    one_each = SSDParser("boxes", "scores", 0.2, 0.5, max_det=10, topk_candidates=1).compute(boxes, scores)
    assert [(int(r[5]), round(float(r[4]), 2)) for r in one_each] == [(1, 0.9), (2, 0.7)]


def test_parser_reads_outputs_stored_transposed_and_refuses_other_layouts():
    """A device may store a rank-3 output the other way round; anything else is one line."""
    from oakpipe.errors import UserError
    from oakpipe.tasks.decode import to_nn_data
    from oakpipe.tasks.ssd_parser import SSDParser

    rng = np.random.default_rng(0)
    corners = rng.random((50, 2, 2)).astype(np.float32) * 0.5
    boxes = np.concatenate([corners[:, 0], corners[:, 0] + corners[:, 1]], 1)[None]  # [1, 50, 4]
    scores = rng.dirichlet(np.ones(6), 50).astype(np.float32)[None]  # [1, 50, 6]
    parser = SSDParser("boxes", "scores", 0.1, 0.5, max_det=20, topk_candidates=10)
    straight = parser.compute(*parser.extract(to_nn_data({"boxes": boxes, "scores": scores})))
    turned = {"boxes": boxes[0].T.copy(), "scores": scores[0].T.copy()}  # [4, 50], [6, 50]
    assert len(straight) == 20
    np.testing.assert_array_equal(parser.compute(*parser.extract(to_nn_data(turned))), straight)
    with pytest.raises(UserError, match="cannot read"):
        parser.extract(to_nn_data({"boxes": boxes[:, :, :3], "scores": scores}))


def test_an_input_size_the_anchors_do_not_fit_is_one_line(tmp_path):
    torchvision_shim.install()
    pytest.importorskip("torchvision")
    from oakpipe import api
    from oakpipe.errors import UserError
    from tests.fixtures.ssd_models import ssdlite

    out = tmp_path / "ssd"
    with pytest.raises(UserError) as caught:
        api.convert(ssdlite(), input_shape=(1, 3, 256, 256), out=out, verify=False)
    assert "resizes every image to 320x320" in caught.value.message and "256x256" in caught.value.message
    assert caught.value.hint == "convert with --input-shape 1,3,320,320"
    assert not list(out.glob("*.onnx"))


SUBCLASS = """
import torch
from torchvision.models.detection.ssd import SSD
from torchvision.models.detection.ssdlite import ssdlite320_mobilenet_v3_large


class Det(SSD):
    def __init__(self):
        torch.manual_seed(0)
        base = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=5)
        super().__init__(base.backbone, base.anchor_generator, (320, 320), 5, image_mean=[0.5] * 3,
                         image_std=[0.25] * 3, head=base.head)
"""


def test_a_file_class_subclassing_ssd_takes_its_transform_as_the_contract(tmp_path):
    """``file.py:Det`` with Det an SSD subclass: a class carries no declaration, yet the contract
    is the transform's (mean 0.5, std 0.25 on 0..1 -> 127.5 and 63.75 on 0..255)."""
    torchvision_shim.install()
    pytest.importorskip("torchvision")
    from oakpipe.models.loader import declared_contract_of
    from oakpipe.models.source import parse_model_spec
    from oakpipe.options import ConvertOptions

    (tmp_path / "det.py").write_text(SUBCLASS)
    spec = f"{tmp_path / 'det.py'}:Det"
    options = ConvertOptions(model=spec, input_shape=(1, 3, SIZE, SIZE))
    declared, built = declared_contract_of(parse_model_spec(spec), options)
    assert declared is not None and declared.mean == (127.5,) * 3 and declared.scale == (63.75,) * 3
    assert built is not None and built.oakpipe_task.names == ["0", "1", "2", "3", "4"]


# -- every stage, the blob included ---------------------------------------------------------------

@pytest.mark.toolchain
def test_archive_head_is_luxonis_ssd_metadata_naming_oakpipes_parser(ssd_export):
    import depthai as dai
    from luxonis_ml.nn_archive.config import Config

    from oakpipe.live.archive_input import read_config
    from oakpipe.tasks.decode import head_of_archive

    config = read_config(ssd_export.archive)[0]
    Config(**config)  # luxonis-ml's own validation of the whole config
    head = config["model"]["heads"][0]
    assert head["parser"] == "OakpipeSSDParser" and head["outputs"] == ["boxes", "scores"]
    metadata = head["metadata"]
    assert metadata["classes"][:2] == ["__background__", "person"] and metadata["n_classes"] == 91
    assert (metadata["conf_threshold"], metadata["iou_threshold"], metadata["max_det"],
            metadata["topk_candidates"]) == (0.001, 0.55, 300, 300)  # the model's own
    assert metadata["box_format"] == "xyxy_normalized" and metadata["boxes_outputs"] == "boxes"
    assert dai.NNArchiveVersionedConfig(str(ssd_export.archive)).getConfig().model.heads[0].parser == head["parser"]
    found = head_of_archive(ssd_export.archive)  # what run decodes with: depthai's own parse of the head
    assert found is not None and found[0]["topk_candidates"] == 300 and found[1] == [1, 3, SIZE, SIZE]
    contract = ssd_export.manifest["preprocessing"]  # baked into the blob: the archive's input takes the U8 frame
    assert contract["mean"] == [127.5] * 3 and contract["scale"] == [127.5] * 3 and contract["reverse_input_channels"]


@pytest.mark.toolchain
def test_decoded_detections_of_onnx_and_fp16_ir_match_torchvision(detector, ssd_export):
    """The ONNX stage (onnxruntime, FP32) and the FP16 IR fed the camera's U8 BGR frame (what
    the host emulator runs), each decoded as ``run`` decodes, against torchvision's forward."""
    import onnxruntime as ort

    from oakpipe.live.host import compile_model, output_names
    from oakpipe.tasks.decode import TaskDecoder

    rgb = photo_rgb()
    theirs = torchvision_detections(detector, rgb)
    decoder = TaskDecoder.for_archive(ssd_export.archive)
    assert decoder is not None
    x = np.ascontiguousarray((rgb.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None])
    session = ort.InferenceSession(str(ssd_export.onnx), providers=["CPUExecutionProvider"])
    onnx_out = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": x})))
    compiled = compile_model(ssd_export.ir)
    frame = np.ascontiguousarray(rgb[..., ::-1].transpose(2, 0, 1)[None])  # the camera's BGR888p frame
    ir_out = dict(zip(output_names(compiled), (np.asarray(v) for v in compiled({0: frame}).values())))
    for outputs in (onnx_out, ir_out):
        ours = [(d.box, d.class_id) for d in decoder.decode(outputs).detections]
        assert_same_detections(ours, theirs)


@pytest.mark.toolchain
def test_verify_judges_every_stage_on_decoded_boxes(ssd_export):
    report = json.loads((ssd_export.folder / "verify.json").read_text())
    checks = {c["stage"]: c for c in report["task_checks"]}
    assert set(checks) == {"onnx", "device", "ir", "ov2021", "fp16"}
    for check in checks.values():
        assert check["what"] == "boxes" and check["passed"] and check["reference_count"] == 300, check
    assert ssd_export.manifest["verified"] is True


@pytest.mark.toolchain
def test_run_writes_results_and_draws_boxes(ssd_export, tmp_path):
    import cv2

    from oakpipe.live import run_export
    from oakpipe.live.options import RunOptions

    image = tmp_path / "astronaut.png"
    cv2.imwrite(str(image), photo_rgb()[..., ::-1])
    results = tmp_path / "out.jsonl"
    pictures = []
    options = RunOptions(backend="host", source=str(image), frames=1, display="none", results=results, conf=0.2)
    run_export(ssd_export.folder, options, on_frame=lambda item, picture: pictures.append((item.frame, picture)))
    line = json.loads(results.read_text().splitlines()[0])
    assert line["task"] == "detect" and line["detections"]
    for det in line["detections"]:
        assert det["score"] > 0.2 and det["class_id"] != 0 and det["name"] != "__background__"
        assert 0 <= min(det["box"]) and max(det["box"]) <= SIZE
    frame, picture = pictures[0]
    assert picture.shape == frame.shape and not np.array_equal(picture, frame)  # boxes were drawn
