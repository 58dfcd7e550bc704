"""The verify table's numbers."""

import numpy as np

from oakpipe.verify.metrics import compare


def test_psnr_and_relative_error_of_an_image():
    ref = np.zeros((1, 3, 8, 8), np.float32)
    ref[..., 0] = 1.0  # range 1
    got = ref + 0.01
    result = compare(ref, got)
    np.testing.assert_allclose(result.max_abs, 0.01, rtol=1e-4)
    np.testing.assert_allclose(result.psnr_db, 40.0, rtol=1e-3)  # 10 log10(1 / 1e-4)
    assert result.cosine is None and result.nan == result.inf == 0


def test_non_finite_candidates_are_counted_and_worst():
    ref = np.ones((1, 3, 8, 8), np.float32)
    ref[0, 0, 0, 0] = 0
    got = ref.copy()
    got[0, 1, 2, 3] = np.nan
    got[0, 2, 2, 3] = np.inf
    result = compare(ref, got)
    assert (result.nan, result.inf) == (1, 1)
    assert result.psnr_db == float("-inf") and result.max_abs == float("inf")


def test_vectors_use_cosine():
    result = compare(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0]]))
    assert result.psnr_db is None and result.cosine == 1.0


def _fp32_stage(exact, reference, candidate, rounded=None, name="onnx"):
    from oakpipe.verify.core import StageResult, excuse_fp32_sensitivity, worst_comparison

    comparison = worst_comparison([compare(reference, candidate)])
    stage = StageResult(name, "out", comparison, False, "<= 0.0001 rel")
    excuse_fp32_sensitivity([stage], [{"out": reference}], [{"out": exact}], {name: [{"out": candidate}]},
                            None if rounded is None else [[{"out": rounded}]])
    return stage


def test_an_fp32_stage_as_far_from_fp64_as_pytorch_fp32_is_not_an_export_fault():
    # yolo11n's DFL outputs on a random frame (measured): PyTorch FP32 and onnxruntime each sit
    # ~3e-3 from FP64, in opposite directions, so they differ from each other by more than twice
    # PyTorch's own error: the stage is judged against FP64, as the reference itself is.
    rng = np.random.default_rng(0)
    exact = rng.uniform(0, 15, (1, 85, 40, 40))
    rounding = rng.normal(0, 1e-5, exact.shape)
    rounding.flat[0] = 3e-3
    reference, candidate = exact + rounding, exact - 1.5 * rounding
    stage = _fp32_stage(exact, reference, candidate)
    assert stage.comparison.relative_max > 1e-4  # failed its raw bound, as on the real model
    assert stage.passed and "FP64" in stage.note


def test_an_fp32_stage_further_from_fp64_than_fp32_rounding_still_fails():
    rng = np.random.default_rng(0)
    exact = rng.uniform(0, 15, (1, 85, 40, 40))
    rounding = rng.normal(0, 1e-5, exact.shape)
    broken = exact.copy()
    broken[0, 4] += 0.01  # one channel off by an export fault, ~1000x the rounding
    assert not _fp32_stage(exact, exact + rounding, broken + rounding).passed
    # every element 3x further from FP64 than FP32 rounding (a mean 3x PyTorch's own): fails too
    assert not _fp32_stage(exact, exact + rounding, exact + 3 * rounding[:, ::-1]).passed
    # a few elements 10x further (a fault at the border, say) and the mean barely moved: fails on the max
    edge = exact + rounding
    edge[0, 4, 0, :] += 10 * np.abs(rounding).max()  # 40 of 136,000 elements
    assert not _fp32_stage(exact, exact + rounding, edge).passed


def test_the_largest_rounding_error_may_land_elsewhere_and_be_larger():
    # measured on a correct yolo11n export (416x416, random frame): onnxruntime's largest error from
    # FP64 was 2.1x PyTorch FP32's, its mean 0.84x: the max of a heavy tail is a noisy statistic
    rng = np.random.default_rng(1)
    exact = rng.uniform(0, 13, (1, 85, 13, 13))
    ours, theirs = rng.standard_t(2, exact.shape) * 1e-5, rng.standard_t(2, exact.shape) * 1e-5
    ours.flat[7], theirs.flat[900] = 2.1e-3, 4.4e-3
    assert _fp32_stage(exact, exact + ours, exact + theirs).passed


def test_fp32_rounding_is_measured_on_every_layer_not_taken_from_one_lucky_pytorch_run():
    # a random-weight EfficientNet-B0 (measured): PyTorch FP32 sat 0.016 from FP64 on logits up to
    # 590, onnxruntime 0.08 (5x), OpenVINO 2021.4 1.9; FP32-sized rounding put on every layer in
    # FP64 moved them by 0.16-0.2. PyTorch's distance alone made a correct export fail.
    rng = np.random.default_rng(2)
    exact = rng.normal(0, 150, (1, 1000))
    reference = exact + rng.normal(0, 0.004, exact.shape)  # PyTorch FP32: pairwise sums, close
    rounded = exact + rng.normal(0, 0.04, exact.shape)  # FP32-sized rounding on every layer
    runtime = exact + rng.normal(0, 0.02, exact.shape)  # another runtime's summation order
    assert not _fp32_stage(exact, reference, runtime).passed  # the old yardstick: 5x PyTorch's
    stage = _fp32_stage(exact, reference, runtime, rounded)
    assert stage.passed and "every layer" in stage.note
    # OpenVINO 2021.4's raw bound is 10x the FP32 stages' (its kernels), and so is its allowance
    ov2021 = exact + rng.normal(0, 0.4, exact.shape)
    assert _fp32_stage(exact, reference, ov2021, rounded, name="ov2021").passed
    assert not _fp32_stage(exact, reference, ov2021, rounded).passed


def test_an_export_fault_still_fails_beside_the_measured_rounding():
    rng = np.random.default_rng(3)
    exact = rng.normal(0, 150, (1, 1000))
    reference = exact + rng.normal(0, 0.004, exact.shape)
    rounded = exact + rng.normal(0, 0.04, exact.shape)
    broken = exact + rng.normal(0, 0.02, exact.shape)
    broken[0, :10] += 1.0  # ten logits off by a fault: 25x the rounding's spread
    assert not _fp32_stage(exact, reference, broken, rounded).passed
    assert not _fp32_stage(exact, reference, exact + 3 * (rounded - exact), rounded).passed  # 3x everywhere
    assert not _fp32_stage(exact, reference, broken, rounded * np.nan).passed  # no usable spread: PyTorch's


def test_a_task_check_with_nothing_on_either_side_does_not_speak_for_the_stage():
    from oakpipe.verify.task_check import TaskCheck

    assert not TaskCheck("ir", "boxes", True, "", reference_count=0, stage_count=0).decisive
    assert TaskCheck("ir", "boxes", True, "", reference_count=0, stage_count=3).decisive
