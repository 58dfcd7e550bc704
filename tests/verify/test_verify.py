"""verify catches what users hit on the camera: wrong contract, FP16 overflow, NaN models."""

import json

import numpy as np
import pytest

from oakpipe import ConvertOptions, convert
from oakpipe.errors import ModelError, UserError, VerificationError
from oakpipe.preprocessing import Preprocessing
from oakpipe.verify.core import parse_tolerances
from oakpipe.verify.samples import read_colour_image
from tests.conftest import MODELS_FILE

pytestmark = pytest.mark.toolchain
SHAPE = (1, 3, 32, 32)


def options(tmp_path, model, **kwargs):
    return ConvertOptions(model=f"{MODELS_FILE}:{model}", input_shape=SHAPE, out=tmp_path / model, **kwargs)


def test_halve_passes_every_stage_and_writes_the_report(halve_export):
    report = json.loads((halve_export.folder / "verify.json").read_text())
    assert report["passed"] is True
    assert [s["stage"] for s in report["stages"]] == ["onnx", "device", "ir", "ov2021", "fp16"]
    assert all(s["passed"] for s in report["stages"])
    device = report["stages"][1]
    assert device["psnr_db"] is None or device["psnr_db"] > 80  # exact up to float32 rounding
    assert (halve_export.folder / "verify_ranges.png").read_bytes()[:4] == b"\x89PNG"
    assert "verify: PASSED" in (halve_export.folder / "verify.md").read_text()


@pytest.mark.parametrize(
    "pre", [Preprocessing(mean=(127.0,) * 3), Preprocessing(reverse_input_channels=False)], ids=["mean", "colour"]
)
def test_wrong_contract_fails_at_the_device_stage_naming_the_preprocessing(tmp_path, pre):
    with pytest.raises(VerificationError) as caught:
        convert(options(tmp_path, "small_cnn", preprocessing=pre))
    assert "stage device fails" in caught.value.message
    assert "camera preprocessing" in caught.value.message
    report = json.loads((tmp_path / "small_cnn" / "verify.json").read_text())
    assert report["first_failure"] == "device" and not report["passed"]


def test_declared_contract_is_the_reference(tmp_path):
    imagenet = Preprocessing(mean=(123.675, 116.28, 103.53), scale=(58.395, 57.12, 57.375))
    export = convert(options(tmp_path, "ImagenetNet", preprocessing=imagenet))
    assert json.loads((export.folder / "verify.json").read_text())["passed"]
    with pytest.raises(VerificationError):
        convert(options(tmp_path, "ImagenetNet", preprocessing=Preprocessing()))


def test_fp16_overflow_is_flagged_with_the_module_name(tmp_path):
    with pytest.raises(VerificationError):
        convert(options(tmp_path, "OverflowsFP16"))
    report = json.loads((tmp_path / "OverflowsFP16" / "verify.json").read_text())
    assert any("amplify" in flag and "overflow" in flag for flag in report["fp16_flags"])
    assert report["first_failure"] == "fp16" and "amplify" in report["blame"]


def test_model_that_produces_nan_is_the_models_fault(tmp_path):
    with pytest.raises(ModelError, match="itself produces NaN"):
        convert(options(tmp_path, "ProducesNaN"))


def test_every_named_output_is_verified(tmp_path):
    export = convert(options(tmp_path, "TwoHeads"))
    report = json.loads((export.folder / "verify.json").read_text())
    assert {s["output"] for s in report["stages"]} == {"bright", "mean"}
    assert report["passed"]


def test_bad_images(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        read_colour_image(tmp_path / "none.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(UserError, match="cannot be read"):
        read_colour_image(tmp_path / "bad.png")
    import cv2

    cv2.imwrite(str(tmp_path / "grey.png"), np.zeros((16, 16), np.uint8))
    with pytest.raises(UserError, match="1 channel"):
        read_colour_image(tmp_path / "grey.png")


def test_tolerance_parsing():
    tolerances = parse_tolerances("fp16=30,ir=0.02")
    assert tolerances.min_psnr["fp16"] == 30 and tolerances.max_relative["ir"] == 0.02
    with pytest.raises(UserError):
        parse_tolerances("gpu=3")


def test_a_failed_verification_leaves_a_usable_export(tmp_path):
    """Verification reports on finished artifacts: its failure must not make them unusable."""
    from oakpipe.convert import Export

    (tmp_path / "bad.png").write_bytes(b"not an image")
    out = tmp_path / "h"
    convert(ConvertOptions(model="halve", input_shape=SHAPE, out=out, verify=False))
    with pytest.raises(UserError, match="cannot be read as an image"):  # refused before any stage runs
        convert(ConvertOptions(model="halve", input_shape=SHAPE, out=out, verify_image=tmp_path / "bad.png"))
    assert Export.open(out).blob.is_file()


def test_an_onnx_model_gets_fp16_emulation_and_overflow_blame(tmp_path):
    """No PyTorch module to hook: the graph is emulated node by node, and the range check
    names the node (and the module its name carries) that overflows."""
    import torch

    from tests.fixtures.models import OverflowsFP16

    path = tmp_path / "overflow.onnx"
    torch.onnx.export(OverflowsFP16().eval(), torch.rand(1, *SHAPE[1:]), str(path), dynamo=False, opset_version=12)
    with pytest.raises(VerificationError):
        convert(ConvertOptions(model=str(path), input_shape=SHAPE, out=tmp_path / "o"))
    report = json.loads((tmp_path / "o" / "verify.json").read_text())
    fp16 = next(s for s in report["stages"] if s["stage"] == "fp16")
    # FP32: sigmoid(conv(x) + 1) with conv(x) + 1 in [1, 2]; FP16: amplify gives inf, sigmoid(inf) = 1
    assert not fp16["passed"] and fp16["max_abs"] > 0.1
    assert report["first_failure"] == "fp16" and "amplify" in report["blame"]


def test_an_untrained_model_is_told_so_even_when_it_passes(tmp_path):
    export = convert(options(tmp_path, "SmallCNN"))  # the class alone: BatchNorm at its initial statistics
    report = json.loads((export.folder / "verify.json").read_text())
    assert report["passed"] and "initial statistics" in report["blame"] and "--weights" in report["blame"]
    assert "note: 1 of 1 BatchNorm layers" in (export.folder / "verify.md").read_text()
