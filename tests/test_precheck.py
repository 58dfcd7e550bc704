"""Every option, file and number is checked before the first stage runs: a bad one is
refused with one line and exit 2, and no export folder is written."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from oakpipe import ConvertOptions, convert
from oakpipe.cli import main
from oakpipe.errors import UserError
from oakpipe.models.source import parse_model_spec
from oakpipe.precheck import DEFAULT_STYLE, check_model_files
from tests.conftest import MODELS_FILE


@pytest.fixture
def files(tmp_path):
    (tmp_path / "text.png").write_text("not an image")
    cv2.imwrite(str(tmp_path / "tiny.png"), np.zeros((16, 16, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "grey.png"), np.zeros((64, 64), np.uint8))
    return tmp_path


BAD_COMMAND_LINES = [
    (["--tolerance", "garbage"], "--tolerance 'garbage' is not STAGE=VALUE"),
    (["--tolerance", "fp16=nan"], "not a finite number"),
    (["--tolerance", "ir=-3"], "not a finite number"),
    (["--image", "{tmp}/text.png"], "cannot be read as an image"),
    (["--image", "{tmp}/grey.png"], "3-channel colour"),
    (["--image", "{tmp}/missing.png"], "no such file"),
    (["--mean-values", "nan,nan,nan"], "NaN or infinity"),
    (["--mean-values", "inf"], "NaN or infinity"),
    (["--scale-values", "1,-inf,1"], "NaN or infinity"),
    (["--scale-values", "0,1,1"], "divide by zero"),
    (["--alpha", "nan"], "outside [0, 1]"),
    (["--weights", "{tmp}/text.png"], "--weights is for a file.py:NAME model, not the built-in halve"),
    (["--weights-dir", "{tmp}"], "--weights-dir is for the adain model"),
    (["--style", "{tmp}/grey.png"], "takes no style image"),
    (["--compile-timeout", "inf"], "not a positive, finite number"),
    (["--compile-timeout", "nan"], "not a positive, finite number"),
]


@pytest.mark.parametrize(("extra", "expected"), BAD_COMMAND_LINES, ids=[" ".join(e) for e, _ in BAD_COMMAND_LINES])
def test_bad_options_are_refused_before_any_stage(files, capsys, extra, expected):
    out = files / "export"
    code = main(["convert", "halve", "--out", str(out), *[e.format(tmp=files) for e in extra]])
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in err and "Traceback" not in err
    assert not out.exists()  # nothing ran, nothing was written


@pytest.mark.parametrize(("style", "expected"), [("text.png", "cannot be read as an image"),
                                                 ("tiny.png", "only 16x16 pixels"),
                                                 ("missing.png", "no such file")])
def test_a_bad_style_image_is_refused_before_any_stage(files, style, expected):
    out = files / "export"
    with pytest.raises(UserError, match=expected):
        convert(ConvertOptions(model="stylizer", style=files / style, out=out))
    assert not out.exists()


def test_weights_for_an_onnx_model_are_refused(files, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 32, 32])])
    onnx.save(helper.make_model(graph), tmp_path / "relu.onnx")
    (tmp_path / "w.pt").write_bytes(b"x")
    with pytest.raises(UserError, match="not an ONNX model"):
        convert(ConvertOptions(model=str(tmp_path / "relu.onnx"), weights=tmp_path / "w.pt", out=tmp_path / "e"))
    assert not (tmp_path / "e").exists()


def test_a_config_file_with_nan_is_refused(tmp_path, capsys):
    config = tmp_path / "oakpipe.yaml"
    config.write_text("input_model: halve\nmean_values: [.nan, 0.0, 0.0]\n")
    assert main(["convert", "--config", str(config), "--out", str(tmp_path / "e")]) == 2
    assert "mean_values" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_stylizer_without_style_takes_the_builtin_one():
    options = check_model_files(ConvertOptions(model="stylizer"), parse_model_spec("stylizer"))
    assert options.style == DEFAULT_STYLE and DEFAULT_STYLE.is_file()
    given = DEFAULT_STYLE.parent / "README.md"  # any path: a given style is kept as it is
    assert check_model_files(ConvertOptions(model="stylizer", style=given), parse_model_spec("stylizer")).style == given


def test_the_default_style_builds_a_stylizer():
    import torch

    from oakpipe.models.loader import build_module

    source = parse_model_spec("stylizer")
    options = check_model_files(ConvertOptions(model="stylizer", input_shape=(1, 3, 64, 64)), source)
    module = build_module(source, options)
    with torch.no_grad():
        out = module(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()


def test_a_pickle_with_code_is_refused_without_torchs_advice(tmp_path, capsys):
    import os

    import torch

    class Payload:
        def __reduce__(self):
            return (os.system, ("true",))

    torch.save({"weight": torch.zeros(2), "payload": Payload()}, tmp_path / "evil.pt")
    code = main(["convert", f"{MODELS_FILE}:SmallCNN", "--weights", str(tmp_path / "evil.pt"),
                 "--out", str(tmp_path / "e"), "--no-verify"])
    err = capsys.readouterr().err
    assert code == 2
    assert "not plain tensors" in err and "system" in err
    assert "weights_only" not in err  # torch's "set weights_only=False" would run the payload


def test_a_file_that_is_no_state_dict_is_named(tmp_path, capsys):
    (tmp_path / "junk.pt").write_bytes(b"hello world")
    code = main(["convert", f"{MODELS_FILE}:SmallCNN", "--weights", str(tmp_path / "junk.pt"),
                 "--out", str(tmp_path / "e"), "--no-verify"])
    err = capsys.readouterr().err
    assert code == 2 and "is not a PyTorch state dict file" in err and "weights_only" not in err
