"""Rewrites that keep a graph's numbers but use ops the 2021.4 MYRIAD compiler has.

The 2021.4 Model Optimizer fused some patterns into VPU layers; oakpipe compiles the ONNX
directly (no Model Optimizer), so the few ops that only the fusion made work are spelled
out here with ops the compiler does take. Each rewrite is exact in real arithmetic, and
``oakpipe verify`` compares the result with PyTorch anyway.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def hard_sigmoid_as_clip(graph: onnx.GraphProto) -> int:
    """HardSigmoid(x) = clip(alpha * x + beta, 0, 1) (MobileNetV3's hardswish exports it at
    opsets below 14); MYRIAD rejects HardSigmoid but has Mul, Add and Clip."""
    rewritten, nodes = 0, []
    for node in graph.node:
        if node.op_type != "HardSigmoid":
            nodes.append(node)
            continue
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
        nodes += [
            helper.make_node("Mul", [node.input[0], f"{stem}_alpha"], [f"{stem}_scaled"], name=f"{name}/mul"),
            helper.make_node("Add", [f"{stem}_scaled", f"{stem}_beta"], [f"{stem}_shifted"], name=f"{name}/add"),
            helper.make_node("Clip", [f"{stem}_shifted", f"{stem}_zero", f"{stem}_one"], list(node.output),
                             name=f"{name}/clip"),
        ]
        rewritten += 1
    if rewritten:
        del graph.node[:]
        graph.node.extend(nodes)
    return rewritten


REWRITES = {"HardSigmoid -> Mul, Add, Clip": hard_sigmoid_as_clip}


def apply_rewrites(model: onnx.ModelProto) -> dict[str, int]:
    """Apply every rewrite; returns how many nodes each one changed (only those > 0)."""
    counts = {label: rewrite(model.graph) for label, rewrite in REWRITES.items()}
    return {label: count for label, count in counts.items() if count}
