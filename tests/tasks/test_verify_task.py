"""Verify by task: every stage's decoded result on the photo against PyTorch's.

Random weights with BatchNorm recalibrated on photos (no trained weights can be downloaded):
the YOLO scores stay under the head's 0.25, so verify judges at the threshold where PyTorch
shows MIN_BOXES boxes, and the report says so.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from oakpipe.tasks.decode import Detection
from oakpipe.verify.task_check import MIN_BOXES, match

pytestmark = pytest.mark.toolchain  # the exports run every stage, the blob included


def reverify(checkpoint, export) -> dict:
    """``oakpipe convert`` again with verify on (every artifact from the cache): verify.json.
    It raises VerificationError if a stage fails, raw or decoded."""
    from oakpipe import ConvertOptions, convert

    shape = tuple(export.manifest["options"]["input_shape"])
    convert(ConvertOptions(model=str(checkpoint), input_shape=shape, out=export.folder, verify=True))
    return json.loads((export.folder / "verify.json").read_text())


def test_a_detector_is_verified_on_its_decoded_boxes_at_every_stage(yolo_checkpoint, yolo_export):
    report = reverify(yolo_checkpoint, yolo_export)
    checks = {c["stage"]: c for c in report["task_checks"]}
    assert set(checks) == {"onnx", "device", "ir", "ov2021", "fp16"}
    for check in checks.values():
        assert check["what"] == "boxes" and check["passed"], check
        assert check["reference_count"] >= MIN_BOXES and check["conf"] < check["head_conf"]
        assert check["matched_reference"] >= 0.9 and check["matched_stage"] >= 0.9
    assert "decoded on the photo" in (yolo_export.folder / "verify.md").read_text()


@pytest.mark.parametrize("model", ["v10", "y26"])
def test_an_nms_free_detector_is_verified_on_its_decoded_boxes_at_every_stage(model, request):
    """YOLOv10 (per-stride cut) and YOLO26 (boxes decoded on the device), NMS-free."""
    report = reverify(request.getfixturevalue(f"{model}_checkpoint"), request.getfixturevalue(f"{model}_export"))
    checks = {c["stage"]: c for c in report["task_checks"]}
    assert set(checks) == {"onnx", "device", "ir", "ov2021", "fp16"}
    for check in checks.values():
        assert check["what"] == "boxes" and check["passed"], check
        assert check["reference_count"] >= MIN_BOXES and check["matched_reference"] >= 0.9, check


def test_a_stage_that_swaps_classes_or_moves_boxes_fails_the_task_check(yolo_export):
    import onnxruntime as ort

    from oakpipe.verify.samples import sample_frames
    from oakpipe.verify.task_check import TaskJudge

    shape = tuple(yolo_export.manifest["options"]["input_shape"])
    _, frame = sample_frames(shape[2], shape[3])[0]
    x = np.ascontiguousarray(frame[::-1].astype(np.float32) / 255.0)[None]  # BGR planar -> RGB [0, 1], the model's input
    session = ort.InferenceSession(str(yolo_export.onnx), providers=["CPUExecutionProvider"])
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": x})))
    task = yolo_export.manifest["stages"]["onnx"]["info"]["task"]
    judge = TaskJudge(task, shape, outputs)
    assert judge.check("onnx", outputs).passed  # itself: all matched
    swapped = {k: np.concatenate([v[:, :5], np.roll(v[:, 5:], 1, axis=1)], 1) for k, v in outputs.items()}
    # boxes twice as large (IoU 1/4): random-weight DFL boxes are ~15 cells wide, so a one-cell error would
    # still match at IoU >= 0.5, as it should (the task check judges what a user sees, not cells)
    moved = {k: np.concatenate([v[:, :4] * 2.0, v[:, 4:]], 1) for k, v in outputs.items()}
    for broken in (swapped, moved):
        check = judge.check("ir", broken)
        assert not check.passed and min(check.matched_reference, check.matched_stage) < 0.9, check.summary


def test_a_classifier_is_verified_on_its_top5(cls_checkpoint, cls_export):
    report = reverify(cls_checkpoint, cls_export)
    checks = report["task_checks"]
    assert [c["stage"] for c in checks] == ["onnx", "device", "ir", "ov2021", "fp16"]
    assert all(c["what"] == "top-5" and c["passed"] and c["top5_overlap"] >= 4 for c in checks), checks


def test_boxes_are_matched_one_to_one_by_class_and_iou():
    a = Detection((0, 0, 10, 10), 1, "a", 0.9)
    b = Detection((20, 20, 30, 30), 2, "b", 0.8)
    near = Detection((1, 0, 11, 10), 1, "a", 0.7)  # IoU 9/11 with a
    other_class = Detection((20, 20, 30, 30), 3, "c", 0.8)
    assert match([a, b], [near, other_class]) == [(0, 0)]
    assert match([a, a], [near]) == [(0, 0)]  # one-to-one: the second a finds nothing left


def test_a_segmenter_is_verified_on_boxes_and_mask_iou(seg_checkpoint, seg_export):
    report = reverify(seg_checkpoint, seg_export)
    checks = report["task_checks"]
    assert len(checks) == 5 and all(c["what"] == "boxes+masks" and c["passed"] for c in checks), checks
    assert all(c["mask_iou"] is not None and c["mask_iou"] > 0.5 for c in checks), checks


def test_a_pose_model_reports_how_far_its_keypoints_move(pose_checkpoint, pose_export):
    report = reverify(pose_checkpoint, pose_export)
    checks = {c["stage"]: c for c in report["task_checks"]}
    assert all(c["what"] == "boxes+keypoints" and c["passed"] for c in checks.values()), checks
    assert checks["onnx"]["keypoint_shift_px"] is not None and checks["onnx"]["keypoint_shift_px"] < 0.1, checks["onnx"]
