"""The Python API: keywords as on the command line, an nn.Module object, and run."""

import json

import pytest

import oakpipe
from oakpipe.errors import UserError
from tests.fixtures.models import small_cnn

pytestmark = pytest.mark.toolchain


def test_convert_a_module_object_with_keywords_then_run_it(tmp_path):
    export = oakpipe.convert(small_cnn(), name="cnn", input_shape=(1, 3, 32, 32), shaves=4,
                             out=tmp_path / "cnn")
    assert export.blob.name == "cnn_openvino_2021.4_4shave.blob"
    assert json.loads((export.folder / "verify.json").read_text())["passed"]
    again = oakpipe.convert(small_cnn(), name="cnn", input_shape="1,3,32,32", shaves=4, out=tmp_path / "cnn")
    assert again.manifest["stages"]["onnx"]["key"] == export.manifest["stages"]["onnx"]["key"]
    summary = oakpipe.run(export, backend="host", source="sample", frames=5, display="none")
    assert summary.frames == 5


def test_changed_weights_change_the_key(tmp_path):
    import torch

    model = small_cnn()
    first = oakpipe.convert(model, name="w", input_shape=(1, 3, 32, 32), out=tmp_path / "w", verify=False)
    with torch.no_grad():
        model.head.bias.add_(1.0)
    second = oakpipe.convert(model, name="w", input_shape=(1, 3, 32, 32), out=tmp_path / "w", verify=False)
    assert first.manifest["stages"]["onnx"]["key"] != second.manifest["stages"]["onnx"]["key"]


def test_unknown_keyword_is_a_user_error():
    with pytest.raises(UserError, match="unexpected keyword"):
        oakpipe.convert("halve", colour="blue")


def test_the_python_api_reads_a_config_file_and_its_keywords_win(tmp_path):
    from oakpipe.api import convert_options
    from oakpipe.preprocessing import Preprocessing

    config = tmp_path / "oakpipe.yaml"
    config.write_text("input_model: halve\nshape: [1, 3, 64, 96]\nmean_values: [10, 20, 30]\n"
                      "rvc2:\n  number_of_shaves: 4\noutput_dir: out\n")
    options = convert_options(None, config=config)
    assert (options.model, options.input_shape, options.shaves) == ("halve", (1, 3, 64, 96), 4)
    assert options.preprocessing == Preprocessing(mean=(10, 20, 30)) and options.out == tmp_path / "out"
    assert options.contract_defaults == frozenset({"scale", "reverse_input_channels"})
    typed = convert_options("halve", config=config, shaves=8, mean_values="0,0,0")
    assert typed.shaves == 8 and typed.preprocessing.mean == (0, 0, 0) and typed.input_shape == (1, 3, 64, 96)


def test_a_config_file_with_a_typo_is_one_user_error_from_the_api_too(tmp_path):
    config = tmp_path / "oakpipe.yaml"
    config.write_text("input_model: halve\nmean_value: [1, 2, 3]\n")
    with pytest.raises(UserError, match="mean_value: unknown key") as caught:
        oakpipe.convert(config=config)
    assert "mean_values" in caught.value.hint


def test_oakpipe_convert_with_a_config_file_makes_the_export(tmp_path):
    config = tmp_path / "oakpipe.yaml"
    config.write_text("input_model: halve\nshape: [1, 3, 32, 32]\noutput_dir: halve32\n")
    export = oakpipe.convert(config=str(config))
    assert export.folder == tmp_path / "halve32" and export.input_shape == (1, 3, 32, 32) and export.blob.is_file()
