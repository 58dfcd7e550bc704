"""What the RVC2 model sees of a graph: fused layers, depthwise convs, bytes, unknown ops."""

from __future__ import annotations

import warnings

import onnx
import pytest
import torch
from onnx import helper
from torch import nn

from oakpipe.estimate import layers as L


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Conv2d(3, 16, 3, padding=1)  # 1x3x32x32 -> 1x16x32x32, + ReLU (fused)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)  # depthwise
        self.pw = nn.Conv2d(16, 16, 1)

    def forward(self, x):
        y = torch.relu(self.dense(x))
        z = self.pw(self.dw(y))
        z = z * torch.sigmoid(z)  # SiLU: one Swish stage
        return torch.relu(z + y).reshape(1, 16, 1024)  # Add + ReLU fused; Reshape free


def export(module, shape, tmp_path) -> onnx.ModelProto:
    path = tmp_path / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.rand(*shape),), str(path), dynamo=False, opset_version=12)
    return onnx.load(str(path))


def test_layers_are_fused_as_the_compiler_does(tmp_path):
    table = L.table_of(export(Block(), (1, 3, 32, 32), tmp_path))
    assert [(x.op, x.kind) for x in table.layers] == [
        ("Conv+Relu", "conv"), ("Conv", "depthwise"), ("Conv", "conv"), ("Swish", "math"), ("Add+Relu", "memory")]
    dense, dw, pw, swish, add = table.layers
    assert dense.macs == 16 * 32 * 32 * 3 * 9 and dw.macs == 16 * 32 * 32 * 9 and pw.macs == 16 * 32 * 32 * 16
    act = 16 * 32 * 32 * 2  # one FP16 activation
    assert dense.in_bytes == 3 * 32 * 32 * 2 and dense.out_bytes == act
    assert dense.weight_bytes == (16 * 3 * 9 + 16) * 2
    assert add.in_bytes == 2 * act and add.out_bytes == act and swish.out_bytes == act
    assert table.input_bytes == 3 * 32 * 32 and table.output_bytes == act  # U8 frame in, FP16 out


def test_an_op_the_model_does_not_know_is_marked_unknown(tmp_path):
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Hardmax", ["x"], ["y"], name="hm")], "g", [x], [y])
    table = L.table_of(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)]))
    assert [(x.op, x.kind) for x in table.layers] == [("Hardmax", "unknown")]


def test_tables_round_trip_through_json(tmp_path):
    table = L.table_of(export(Block(), (1, 3, 32, 32), tmp_path), "block")
    L.save_table(table, tmp_path / "t.json")
    assert L.load_table(tmp_path / "t.json") == table


@pytest.mark.parametrize("size, memory", [(32, "CMX"), (256, "DDR")])
def test_large_activations_go_through_ddr(tmp_path, size, memory):
    from oakpipe.estimate import rvc2

    table = L.table_of(export(nn.Conv2d(3, 32, 3, padding=1), (1, 3, size, size), tmp_path))
    # 32 x 256 x 256 FP16 = 4 MiB out: over the 2.5 MiB CMX; at 32 x 32 64 KiB is far under
    assert rvc2.estimate(table).layers[0].memory == memory
