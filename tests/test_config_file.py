"""``--config oakpipe.yaml``: modelconverter-style keys, typed options win, one-line errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from oakpipe.cli import build_parser, convert_options, main
from oakpipe.config_file import load_config
from oakpipe.errors import UserError
from oakpipe.options import ConvertOptions
from oakpipe.preprocessing import IMAGENET_MEAN, IMAGENET_SCALE

FULL = """\
input_model: model.onnx
shape: [1, 3, 128, 160]
mean_values: imagenet
scale_values: [1, 2, 3]
encoding: {from: RGB, to: RGB}
rvc2: {number_of_shaves: 8}
opset: 13
alpha: 0.5
weights: w.pt
output_dir: out
"""


def write(folder: Path, text: str, name: str = "oakpipe.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def options(*argv: str) -> ConvertOptions:
    return convert_options(build_parser().parse_args(["convert", *argv]))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with the full config and the files it names; the test runs elsewhere."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"not parsed here")
    (folder / "w.pt").write_bytes(b"")
    write(folder, FULL)
    return folder


def test_file_values_become_options_with_paths_relative_to_the_file(project, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # not the file's folder
    got = options("--config", str(project / "oakpipe.yaml"))
    assert got.model == str(project / "model.onnx")
    assert got.input_shape == (1, 3, 128, 160)
    assert got.preprocessing.mean == IMAGENET_MEAN
    assert got.preprocessing.scale == (1.0, 2.0, 3.0)
    assert got.preprocessing.reverse_input_channels is False  # from == to: no reversal
    assert (got.shaves, got.opset, got.alpha) == (8, 13, 0.5)
    assert got.weights == project / "w.pt"
    assert got.out == project / "out"


def test_typed_options_win_even_at_their_default_values(project):
    got = options("--config", str(project / "oakpipe.yaml"), "--opset", "12", "--shaves", "6",
                  "--reverse-input-channels", "--mean-values", "0,0,0", "--input-shape", "1,3,256,256")
    assert (got.opset, got.shaves, got.input_shape) == (12, 6, (1, 3, 256, 256))
    assert got.preprocessing.reverse_input_channels is True
    assert got.preprocessing.mean == (0.0, 0.0, 0.0)
    assert got.preprocessing.scale == (1.0, 2.0, 3.0)  # not typed: still the file's


def test_model_argument_wins_over_input_model(project):
    assert options("halve", "--config", str(project / "oakpipe.yaml")).model == "halve"


def test_without_config_the_defaults_are_unchanged():
    assert options("halve") == ConvertOptions(model="halve")


@pytest.mark.parametrize("encoding, reverse", [("RGB", False), ("BGR", False), ("{from: RGB, to: BGR}", True),
                                               ("{from: BGR, to: RGB}", True), ("{to: BGR}", True)])
def test_encoding(tmp_path, encoding, reverse):
    path = write(tmp_path, f"input_model: halve\nencoding: {encoding}\n")
    assert options("--config", str(path)).preprocessing.reverse_input_channels is reverse


def test_imagenet_scale_and_builtin_and_python_models(tmp_path):
    (tmp_path / "net.py").write_text("")
    path = write(tmp_path, "input_model: net.py:Net\nscale_values: imagenet\n")
    got = options("--config", str(path))
    assert got.model == f"{tmp_path / 'net.py'}:Net"
    assert got.preprocessing.scale == IMAGENET_SCALE
    assert load_config(write(tmp_path, "input_model: halve\n")).model_spec() == "halve"


@pytest.mark.parametrize("text, expected", [
    ("mean_value: [1, 2, 3]\n", "oakpipe.yaml:mean_value: unknown key -> did you mean 'mean_values'?"),
    ("rvc2: {number_of_shave: 6}\n", "rvc2.number_of_shave: unknown key -> did you mean 'rvc2.number_of_shaves'?"),
    ("encoding: {frm: RGB}\n", "encoding.frm: unknown key -> did you mean 'encoding.from'?"),
    ("zzz: 1\n", "zzz: unknown key -> valid keys: input_model, shape"),
    ("shape: [1, 3, 256]\n", "oakpipe.yaml:shape: needs 4 dimensions [N, C, H, W], got 3"),
    ("shape: [2, 3, 256, 256]\n", "oakpipe.yaml:shape: batch size 2 -> "),
    ("shape: 1,3,256,256\n", "oakpipe.yaml:shape: Input should be a valid list"),
    ("opset: '12'\n", "oakpipe.yaml:opset: Input should be a valid integer (got '12')"),
    ("opset: 9\n", "oakpipe.yaml:opset: 9 is not supported"),
    ("mean_values: [1, 2]\n", "oakpipe.yaml:mean_values: needs 3 values"),
    ("mean_values: imagenett\n", "oakpipe.yaml:mean_values: 'imagenett' is neither a list of 3 numbers nor 'imagenet'"),
    ("encoding: RBG\n", "oakpipe.yaml:encoding.from: Input should be 'RGB' or 'BGR'"),
    ("rvc2: {number_of_shaves: 17}\n", "oakpipe.yaml:rvc2.number_of_shaves: 17 is outside 1..16"),
    ("weights: 3\n", "oakpipe.yaml:weights: Input should be a valid string"),
    ("- a\n- b\n", "oakpipe.yaml: expected a mapping of keys"),
    ("shape: [1, 3\n", "oakpipe.yaml:3: not valid YAML: expected ',' or ']'"),
])
def test_mistakes_are_one_line_naming_file_and_key(tmp_path, text, expected):
    path = write(tmp_path, "input_model: halve\n" + text if not text.startswith("-") else text)
    with pytest.raises(UserError) as caught:
        options("--config", str(path))
    line = caught.value.one_line()
    assert expected in line and "\n" not in line


def test_no_model_anywhere_is_a_clear_error(tmp_path, capsys):
    assert main(["convert"]) == 2
    assert "no MODEL given" in capsys.readouterr().err
    path = write(tmp_path, "shape: [1, 3, 64, 64]\n")
    assert main(["convert", "--config", str(path)]) == 2
    assert "no input_model and no MODEL" in capsys.readouterr().err


def test_missing_file(tmp_path, capsys):
    assert main(["convert", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: No such file" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["deploy", "verify"])
def test_deploy_and_verify_take_config(project, command):
    args = build_parser().parse_args([command, "--config", str(project / "oakpipe.yaml")])
    assert convert_options(args).input_shape == (1, 3, 128, 160)
