"""Rewrites that keep a graph's numbers but use ops the 2021.4 MYRIAD compiler has.

The 2021.4 Model Optimizer fused some patterns into VPU layers; oakpipe compiles the ONNX
directly (no Model Optimizer), so the few ops that only the fusion made work are spelled
out here with ops the compiler does take. Each rewrite is exact in real arithmetic, and
``oakpipe verify`` compares the result with PyTorch anyway.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

Replacement = Callable[[onnx.NodeProto, int], "list[onnx.NodeProto] | None"]


def replace_nodes(graph: onnx.GraphProto, replacement: Replacement) -> int:
    """Swap each node for ``replacement(node, count_so_far)`` where that is not None (it may
    add initializers); the graph keeps its order. Returns how many nodes were replaced."""
    rewritten, nodes = 0, []
    for node in graph.node:
        new = replacement(node, rewritten)
        if new is None:
            nodes.append(node)
            continue
        nodes += new
        rewritten += 1
    if rewritten:
        del graph.node[:]
        graph.node.extend(nodes)
    return rewritten


def hard_sigmoid_as_clip(graph: onnx.GraphProto) -> int:
    """HardSigmoid(x) = clip(alpha * x + beta, 0, 1) (MobileNetV3's hardswish exports it at
    opsets below 14); MYRIAD rejects HardSigmoid but has Mul, Add and Clip."""

    def replacement(node: onnx.NodeProto, rewritten: int) -> list[onnx.NodeProto] | None:
        if node.op_type != "HardSigmoid":
            return None
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
        stem = f"oakpipe_hsig{rewritten}"
        graph.initializer.extend([
            numpy_helper.from_array(np.array(alpha, np.float32), f"{stem}_alpha"),
            numpy_helper.from_array(np.array(beta, np.float32), f"{stem}_beta"),
            numpy_helper.from_array(np.array(0.0, np.float32), f"{stem}_zero"),
            numpy_helper.from_array(np.array(1.0, np.float32), f"{stem}_one"),
        ])
        name = node.name or stem
        return [
            helper.make_node("Mul", [node.input[0], f"{stem}_alpha"], [f"{stem}_scaled"], name=f"{name}/mul"),
            helper.make_node("Add", [f"{stem}_scaled", f"{stem}_beta"], [f"{stem}_shifted"], name=f"{name}/add"),
            helper.make_node("Clip", [f"{stem}_shifted", f"{stem}_zero", f"{stem}_one"], list(node.output),
                             name=f"{name}/clip"),
        ]

    return replace_nodes(graph, replacement)


#: Above this many rows, a MatMul/Gemm with a constant weight becomes a 1x1 convolution.
#: The 2021.4 MYRIAD compiler's time grows steeply with a FullyConnected layer's rows
#: (measured on one layer of 96 -> 384 features: 196 rows 2.2 s, 784 rows 65 s, and ConvNeXt's
#: 3136 rows past 600 s), while the same layer as a 1x1 Conv with its two Transposes
#: compiles in 1.7 s at 3136 rows. A classifier head (1 row) or ViT tokens (~200) keep MatMul.
MATMUL_ROWS_AS_CONV = 256


def _static_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # shape inference is a convenience here: no shapes, no rewrite
        return {}
    shapes = {}
    for value in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") and d.dim_value > 0 for d in dims):
            shapes[value.name] = [d.dim_value for d in dims]
    return shapes


def _linear_of(node, constants: dict, shapes: dict) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(weight (K, N), bias (N,) or None) of a MatMul/Gemm with constant weights, else None."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.input[0] not in shapes or node.input[1] not in constants:
        return None
    weight = numpy_helper.to_array(constants[node.input[1]]).astype(np.float32)
    if weight.ndim != 2:
        return None
    if node.op_type == "MatMul":
        return weight, None
    if attrs.get("transA", 0):
        return None
    weight = (weight.T if attrs.get("transB", 0) else weight) * np.float32(attrs.get("alpha", 1.0))
    if len(node.input) < 3 or not node.input[2]:
        return weight, None
    if node.input[2] not in constants:
        return None
    bias = numpy_helper.to_array(constants[node.input[2]]).astype(np.float32) * np.float32(attrs.get("beta", 1.0))
    if bias.size not in (1, weight.shape[1]):
        return None  # a per-row bias has no Conv form
    return weight, np.broadcast_to(bias.reshape(-1), (weight.shape[1],)).copy()


def many_row_matmul_as_conv(model: onnx.ModelProto) -> int:
    """x (..., M, K) @ W (K, N) + b with M * ... >= MATMUL_ROWS_AS_CONV rows, as
    Reshape (1, 1, rows, K) -> Transpose (1, K, rows, 1) -> 1x1 Conv -> Transpose -> Reshape:
    the same sums (the rows become the conv's spatial positions)."""
    graph = model.graph
    constants = {i.name: i for i in graph.initializer}
    shapes = _static_shapes(model) if any(n.op_type in ("MatMul", "Gemm") for n in graph.node) else {}

    def replacement(node: onnx.NodeProto, rewritten: int) -> list[onnx.NodeProto] | None:
        linear = _linear_of(node, constants, shapes) if node.op_type in ("MatMul", "Gemm") else None
        rows = int(np.prod(shapes[node.input[0]][:-1])) if linear is not None else 0
        if linear is None or rows < MATMUL_ROWS_AS_CONV or len(shapes[node.input[0]]) < 2:
            return None
        weight, bias = linear
        k, n = weight.shape
        stem, name = f"oakpipe_fc{rewritten}", node.name or f"oakpipe_fc{rewritten}"
        out_shape = shapes[node.input[0]][:-1] + [n]
        graph.initializer.extend([
            numpy_helper.from_array(np.ascontiguousarray(weight.T).reshape(n, k, 1, 1), f"{stem}_weight"),
            numpy_helper.from_array(np.array([1, 1, rows, k], np.int64), f"{stem}_rows_shape"),
            numpy_helper.from_array(np.array(out_shape, np.int64), f"{stem}_out_shape"),
        ] + ([numpy_helper.from_array(bias, f"{stem}_bias")] if bias is not None else []))
        conv_inputs = [f"{stem}_cols", f"{stem}_weight"] + ([f"{stem}_bias"] if bias is not None else [])
        return [
            helper.make_node("Reshape", [node.input[0], f"{stem}_rows_shape"], [f"{stem}_rows"], name=f"{name}/rows"),
            helper.make_node("Transpose", [f"{stem}_rows"], [f"{stem}_cols"], perm=[0, 3, 2, 1], name=f"{name}/cols"),
            helper.make_node("Conv", conv_inputs, [f"{stem}_conv"], kernel_shape=[1, 1], name=f"{name}/conv"),
            helper.make_node("Transpose", [f"{stem}_conv"], [f"{stem}_back"], perm=[0, 3, 2, 1], name=f"{name}/back"),
            helper.make_node("Reshape", [f"{stem}_back", f"{stem}_out_shape"], list(node.output)[:1],
                             name=f"{name}/reshape"),
        ]

    return replace_nodes(graph, replacement)


REWRITES = {
    "HardSigmoid -> Mul, Add, Clip": lambda model: hard_sigmoid_as_clip(model.graph),
    f"MatMul/Gemm over >= {MATMUL_ROWS_AS_CONV} rows -> 1x1 Conv": many_row_matmul_as_conv,
}


def apply_rewrites(model: onnx.ModelProto) -> dict[str, int]:
    """Apply every rewrite; returns how many nodes each one changed (only those > 0)."""
    counts = {label: rewrite(model) for label, rewrite in REWRITES.items()}
    return {label: count for label, count in counts.items() if count}
