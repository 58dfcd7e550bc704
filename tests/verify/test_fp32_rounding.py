"""The FP32 stages' verdict on a model that amplifies rounding: torchvision's EfficientNet-B0.

With random weights (BatchNorm recalibrated on photos: no trained weights can be downloaded
here) its logits on random frames reach several hundred, and every FP32 runtime's rounding
grows with them: the README's compatibility table reported this correct export as "the ONNX
export computes differently". The verdict must pass it and still catch a real export fault.
"""

from __future__ import annotations

import numpy as np
import pytest

from oakpipe import ConvertOptions
from oakpipe.preprocessing import Preprocessing, frame_to_model_input
from oakpipe.stages.onnx_export import export_torch
from oakpipe.verify import core, runners
from oakpipe.verify.samples import sample_frames

SIZE = 224


@pytest.fixture(scope="module")
def efficientnet(tmp_path_factory):
    from tests.fixtures import torchvision_shim

    torchvision_shim.install()  # before torchvision: see the fixture's docstring
    torchvision = pytest.importorskip("torchvision")
    import torch

    from tests.fixtures.ultralytics_models import recalibrate_batchnorm

    torch.manual_seed(0)
    model = torchvision.models.efficientnet_b0(weights=None)
    recalibrate_batchnorm(model, SIZE)
    path = tmp_path_factory.mktemp("efficientnet") / "efficientnet.onnx"
    export_torch(model.eval(), ConvertOptions(model="halve", input_shape=(1, 3, SIZE, SIZE)), path)
    xs = [frame_to_model_input(frame, Preprocessing()) for _, frame in sample_frames(SIZE, SIZE)]
    names = ["output"]
    return {"path": path, "xs": xs, "reference": runners.torch_outputs(model, xs, names),
            "exact": runners.torch64_outputs(model, xs, names),
            "rounded": list(runners.rounded64_outputs(model, xs, names))}


def onnx_verdict(case: dict, path) -> core.StageResult:
    """The ONNX stage's row, judged as verify judges it (raw bound, then against FP64)."""
    outputs = runners.onnx_outputs(path, case["xs"], ["output"])
    row = core.stage_results("onnx", case["reference"], outputs, ["output"], core.Tolerances())[0]
    core.excuse_fp32_sensitivity([row], case["reference"], case["exact"], {"onnx": outputs}, case["rounded"])
    return row


def test_a_correct_export_of_a_rounding_amplifier_passes(efficientnet):
    logits = max(float(np.abs(e["output"]).max()) for e in efficientnet["exact"])
    assert logits > 100  # the amplification this test is about (measured: up to 760)
    assert onnx_verdict(efficientnet, efficientnet["path"]).passed


def test_one_channel_off_by_1e_4_still_fails(efficientnet, tmp_path):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(efficientnet["path"]))
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    weights = {t.name: t for t in model.graph.initializer}[convs[len(convs) // 2].input[1]]
    values = numpy_helper.to_array(weights).copy()
    values[0] *= 1 + 1e-4  # an export fault far below any visible change: one output channel's weights
    weights.CopyFrom(numpy_helper.from_array(values, weights.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    row = onnx_verdict(efficientnet, broken)
    assert not row.passed and row.note == ""
