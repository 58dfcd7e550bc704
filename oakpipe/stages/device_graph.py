"""Stage 2: bake the camera preprocessing into the graph the camera runs.

The camera sends U8 planar BGR frames at the network's size. The device graph takes
exactly that (as float values 0..255; the compiler makes the blob's input U8) and turns
it into what the model was trained on, with the Model Optimizer's operations in its
order: reverse the channels, subtract the mean, divide by the scale. See
``oakpipe.preprocessing`` for the contract these nodes implement.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from oakpipe.preprocessing import Preprocessing
from oakpipe.stages.onnx_export import INPUT_NAME, describe_onnx, rename_value
from oakpipe.stages.rewrites import apply_rewrites

CAMERA_INPUT = INPUT_NAME
MODEL_INPUT = "oakpipe_model_input"
#: A per-channel step of the contract -> (ONNX op, constant name, output name, node name).
STEP_NODES = {
    "subtract": ("Sub", "oakpipe_mean", "oakpipe_centred", "oakpipe/mean"),
    "divide": ("Div", "oakpipe_scale", "oakpipe_scaled", "oakpipe/scale"),
}


def preprocessing_nodes(pre: Preprocessing, opset: int) -> tuple[list, list]:
    """ONNX nodes and constants: CAMERA_INPUT (1,3,H,W) BGR 0..255 -> MODEL_INPUT, one per
    step of ``pre.steps()`` (the contract's one definition)."""
    nodes: list = []
    constants: list = []
    current = CAMERA_INPUT
    for op, values in pre.steps():
        if op == "reverse":
            parts = ["oakpipe_b", "oakpipe_g", "oakpipe_r"]
            if opset >= 13:
                constants.append(numpy_helper.from_array(np.array([1, 1, 1], np.int64), "oakpipe_split"))
                nodes.append(helper.make_node("Split", [current, "oakpipe_split"], parts, axis=1, name="oakpipe/split"))
            else:
                nodes.append(helper.make_node("Split", [current], parts, axis=1, split=[1, 1, 1], name="oakpipe/split"))
            order = [parts[i] for i in values]
            nodes.append(helper.make_node("Concat", order, ["oakpipe_reversed"], axis=1, name="oakpipe/reverse_channels"))
            current = "oakpipe_reversed"
        else:
            onnx_op, constant, output, node = STEP_NODES[op]
            constants.append(numpy_helper.from_array(np.array(values, np.float32).reshape(1, 3, 1, 1), constant))
            nodes.append(helper.make_node(onnx_op, [current, constant], [output], name=node))
            current = output
    if current == CAMERA_INPUT:  # identity contract: still give the model input its own name
        nodes.append(helper.make_node("Identity", [current], [MODEL_INPUT], name="oakpipe/identity"))
    else:
        last = nodes[-1].output
        last.pop()
        last.append(MODEL_INPUT)
    return nodes, constants


def build_device_graph(model_onnx: Path, pre: Preprocessing, path: Path) -> dict:
    model = onnx.load(str(model_onnx))
    graph = model.graph
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    rename_value(graph, INPUT_NAME, MODEL_INPUT)
    camera_port = next(p for p in graph.input if p.name == MODEL_INPUT)
    camera_port.name = CAMERA_INPUT
    nodes, constants = preprocessing_nodes(pre, opset)
    original = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + original)  # prepended: the graph stays topologically sorted
    graph.initializer.extend(constants)
    rewrites = apply_rewrites(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return {**describe_onnx(model), "rewrites": rewrites}
