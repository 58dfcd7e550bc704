"""Graphs newer than opset 13 (what the dynamo exporter writes) are brought to opset 13,
so the 2021.4 reader does not silently misread them."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from numpy.testing import assert_allclose
from onnx import TensorProto, helper, numpy_helper

from oakpipe import ConvertOptions, convert
from oakpipe.errors import UnsupportedModelError
from oakpipe.stages.opset_downgrade import downgrade


def opset18_model() -> onnx.ModelProto:
    """conv -> Split(num_outputs=2) -> a - mean(b over H, W; axes as an input) -> sigmoid."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.05, (6, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["c"], pads=[1, 1, 1, 1], name="/conv/Conv"),
        helper.make_node("Split", ["c"], ["a", "b"], axis=1, num_outputs=2, name="/Split"),
        helper.make_node("ReduceMean", ["b", "axes"], ["m"], keepdims=1, name="/ReduceMean"),
        helper.make_node("Sub", ["a", "m"], ["d"], name="/Sub"),
        helper.make_node("Sigmoid", ["d"], ["y"], name="/Sigmoid"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 32, 32])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    return model


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": x})[0]


def test_downgrade_keeps_the_numbers():
    model = opset18_model()
    old = downgrade(model)
    assert old.opset_import[0].version == 13
    x = np.random.default_rng(1).random((1, 3, 32, 32), dtype=np.float32)
    assert_allclose(run(old, x), run(model, x), atol=1e-6)  # same arithmetic, older spelling


def test_axes_from_a_computed_tensor_cannot_be_downgraded():
    model = opset18_model()
    model.graph.initializer.pop()  # "axes" now comes from nowhere constant
    model.graph.node.insert(0, helper.make_node("Shape", ["image"], ["axes"], start=2, end=4))
    with pytest.raises(ValueError, match="computed tensor"):
        downgrade(model)


@pytest.mark.toolchain
def test_opset18_onnx_converts_and_the_2021_reader_agrees(tmp_path):
    onnx.save(opset18_model(), str(tmp_path / "new.onnx"))
    export = convert(ConvertOptions(model=str(tmp_path / "new.onnx"), input_shape=(1, 3, 32, 32),
                                    out=tmp_path / "new"))
    assert onnx.load(str(export.onnx)).opset_import[0].version == 13
    report = json.loads((export.folder / "verify.json").read_text())
    assert next(s for s in report["stages"] if s["stage"] == "ov2021")["passed"]


def test_a_graph_that_cannot_come_down_says_how_to_re_export(tmp_path):
    from oakpipe.stages.onnx_export import import_onnx

    model = opset18_model()
    model.graph.node[-1].op_type = "Mish"  # new in opset 18: no opset-13 form
    onnx.save(model, str(tmp_path / "odd.onnx"))
    with pytest.raises(UnsupportedModelError, match="could not be brought to opset 13: .*Mish") as caught:
        import_onnx(tmp_path / "odd.onnx", ConvertOptions(model="halve", input_shape=(1, 3, 32, 32)),
                    tmp_path / "out.onnx")
    assert "opset_version=12" in caught.value.hint
