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
