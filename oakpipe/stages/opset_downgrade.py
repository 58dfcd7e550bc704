"""Bring a newer ONNX graph (the dynamo exporter writes opset 18+) down to opset 13.

OpenVINO 2021.4's ONNX reader, which the MyriadX compiler reads through, knows opsets up
to 13 and misreads some newer node forms *without an error*: opset 18's ReduceMean takes
its axes as an input, which the old reader ignores, so the blob would silently average
over every axis. onnx's own version converter has no down-adapters for most ops, so the
few forms that changed are rewritten here, the rest (type-only changes) keep their
meaning, and the checker then validates the graph at opset 13. ``oakpipe verify``'s
2021.4-reader stage checks the result either way.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

TARGET_OPSET = 13
REDUCE_OPS = {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
              "ReduceLogSumExp", "ReduceSumSquare"}  # axes became an input at 18 (ReduceSum at 13 already)
#: Attributes added after opset 13 that may be dropped when they hold their default value.
DEFAULTED = {"antialias": 0, "keep_aspect_ratio_policy": b"stretch", "saturate": 1, "allowzero": 0,
             "noop_with_empty_axes": 0}


class DowngradeError(ValueError):
    """A node uses a form that opset 13 cannot express."""


def constant_value(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    return None


def reduce_axes_to_attribute(node, graph: onnx.GraphProto) -> None:
    if len(node.input) < 2 or not node.input[1]:
        return
    axes = constant_value(graph, node.input[1])
    if axes is None:
        raise DowngradeError(f"{node.op_type} {node.name} takes its axes from a computed tensor")
    del node.input[1:]
    node.attribute.append(helper.make_attribute("axes", [int(a) for a in axes.reshape(-1)]))


def split_outputs_to_sizes(node, graph: onnx.GraphProto, shapes: dict[str, list[int]]) -> None:
    attrs = {a.name: a for a in node.attribute}
    if "num_outputs" not in attrs:
        return
    axis = helper.get_attribute_value(attrs["axis"]) if "axis" in attrs else 0
    dims = shapes.get(node.input[0])
    if not dims:
        raise DowngradeError(f"Split {node.name} splits a tensor of unknown shape")
    count, length = len(node.output), dims[axis]
    chunk = -(-length // count)  # opset 18: equal chunks, the last one smaller
    sizes = [chunk] * (count - 1) + [length - chunk * (count - 1)]
    name = f"{node.name or node.output[0]}_split_sizes"
    graph.initializer.append(numpy_helper.from_array(np.array(sizes, np.int64), name))
    node.input.append(name)
    node.attribute.remove(attrs["num_outputs"])


def drop_default_attributes(node) -> None:
    for attribute in list(node.attribute):
        if attribute.name in DEFAULTED and helper.get_attribute_value(attribute) == DEFAULTED[attribute.name]:
            node.attribute.remove(attribute)


def static_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    inferred = onnx.shape_inference.infer_shapes(model)
    values = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}


def downgrade(model: onnx.ModelProto, target: int = TARGET_OPSET) -> onnx.ModelProto:
    """A copy of ``model`` at opset ``target``; raises DowngradeError or onnx's checker error."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    shapes = static_shapes(model)
    for node in model.graph.node:
        if node.op_type in REDUCE_OPS:
            reduce_axes_to_attribute(node, model.graph)
        elif node.op_type == "Split":
            split_outputs_to_sizes(node, model.graph, shapes)
        drop_default_attributes(node)
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = target
    onnx.checker.check_model(model, full_check=True)
    return model
