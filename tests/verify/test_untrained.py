"""Verify tells an untrained model (BatchNorm statistics at their initial values) apart."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from oakpipe.verify.untrained import untrained_batchnorm


def small_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8))


def test_fresh_batchnorm_is_reported_as_untrained():
    note = untrained_batchnorm(small_net().eval())
    assert note is not None and note.startswith("2 of 2 BatchNorm layers") and "--weights" in note


def test_batchnorm_with_statistics_is_not_reported():
    net = small_net()
    net.train()
    with torch.no_grad():
        net(torch.rand(4, 3, 16, 16))  # one pass in train mode moves the running statistics
    assert untrained_batchnorm(net.eval()) is None
    assert untrained_batchnorm(nn.Sequential(nn.Conv2d(3, 3, 1))) is None  # no BatchNorm at all


def batchnorm_onnx(path, mean: float, var: float):
    """A graph with a BatchNormalization node an exporter could not fold (it reads the input)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    constants = [numpy_helper.from_array(np.full(3, v, np.float32), name)
                 for name, v in (("scale", 1.0), ("bias", 0.0), ("mean", mean), ("var", var))]
    node = helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["y"])
    graph = helper.make_graph([node], "bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])], constants)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)]), str(path))
    return path


def test_an_onnx_file_with_untrained_batchnorm_nodes_is_told(tmp_path):
    from oakpipe.verify.untrained import untrained_onnx_batchnorm

    note = untrained_onnx_batchnorm(batchnorm_onnx(tmp_path / "fresh.onnx", 0.0, 1.0))
    assert note is not None and note.startswith("1 of 1 BatchNorm layers") and "FP16 ranges" in note
    assert untrained_onnx_batchnorm(batchnorm_onnx(tmp_path / "trained.onnx", 0.2, 0.7)) is None


def test_batchnorm_folded_into_a_convolution_leaves_nothing_to_tell(tmp_path):
    """The documented limit: an eval-mode export folds BatchNorm into the Conv before it."""
    import onnx

    from oakpipe import ConvertOptions
    from oakpipe.stages.onnx_export import export_torch
    from oakpipe.verify.untrained import untrained_onnx_batchnorm

    path = tmp_path / "folded.onnx"
    export_torch(small_net().eval(), ConvertOptions(model="halve", input_shape=(1, 3, 16, 16)), path)
    assert not any(n.op_type == "BatchNormalization" for n in onnx.load(str(path)).graph.node)
    assert untrained_onnx_batchnorm(path) is None


def test_recalibrated_batchnorm_is_not_reported():
    from tests.fixtures.ultralytics_models import recalibrate_batchnorm

    net = small_net()
    recalibrate_batchnorm(net, 32)  # statistics of photos, as the compatibility table's models get
    assert untrained_batchnorm(net) is None


def conv_batchnorm_onnx(path, mean: float, var: float):
    """Conv then BatchNormalization, as a file from elsewhere may come: oakpipe's import folds it."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)
    constants = [numpy_helper.from_array(weights, "w")] + [
        numpy_helper.from_array(np.full(8, v, np.float32), name)
        for name, v in (("scale", 1.0), ("bias", 0.0), ("mean", mean), ("var", var))]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["y"])]
    graph = helper.make_graph(nodes, "convbn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])], constants)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)]), str(path))
    return path


@pytest.mark.toolchain
@pytest.mark.parametrize("mean, var, told", [(0.0, 1.0, True), (0.1, 0.8, False)], ids=["fresh", "trained"])
def test_an_onnx_files_own_batchnorm_is_read_though_the_import_folds_it(tmp_path, mean, var, told):
    import json

    import onnx

    from oakpipe import ConvertOptions, convert

    export = convert(ConvertOptions(model=str(conv_batchnorm_onnx(tmp_path / "net.onnx", mean, var)),
                                    input_shape=(1, 3, 16, 16), out=tmp_path / "out"))
    assert "BatchNormalization" not in {n.op_type for n in onnx.load(str(export.folder / "net.onnx")).graph.node}
    report = json.loads((export.folder / "verify.json").read_text())
    assert report["passed"]
    assert ("initial statistics" in (report["blame"] or "")) == told
    assert not told or "export the ONNX file from the trained model" in report["blame"]
