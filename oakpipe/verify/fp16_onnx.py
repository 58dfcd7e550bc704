"""FP16 emulation for a model that started as ONNX (there is no PyTorch module to hook).

Every float tensor the graph computes goes through a Cast to float16 and back before the
next node sees it, and the weights are rounded the same way: values past 65504 become
inf, as on the device, and every intermediate keeps float16's 11 significant bits.
Arithmetic inside a node stays float32 (as in the PyTorch-side emulation). One session,
one run per input: as fast as the float32 graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
ROUNDED = "_oakpipe_fp16"


def round16(value: np.ndarray) -> np.ndarray:
    if value.dtype == np.float32:
        with np.errstate(over="ignore"):
            return value.astype(np.float16).astype(np.float32)
    return value


def float_outputs(model: onnx.ModelProto) -> set[str]:
    inferred = onnx.shape_inference.infer_shapes(model)
    values = list(inferred.graph.value_info) + list(inferred.graph.output)
    return {v.name for v in values if v.type.tensor_type.elem_type == FLOAT}


def with_fp16_rounding(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose float weights are rounded and whose float tensors pass through
    Cast(float16) -> Cast(float) after the node that makes them."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    for index, init in enumerate(graph.initializer):
        if init.data_type == FLOAT:
            graph.initializer[index].CopyFrom(numpy_helper.from_array(round16(numpy_helper.to_array(init)), init.name))
    rounded = float_outputs(model) | {o.name for o in graph.output}
    nodes = []
    for node in graph.node:
        nodes.append(node)
        for position, name in enumerate(node.output):
            if name not in rounded:
                continue
            raw, half = f"{name}{ROUNDED}_raw", f"{name}{ROUNDED}_half"
            node.output[position] = raw
            nodes.append(helper.make_node("Cast", [raw], [half], to=FLOAT16))
            nodes.append(helper.make_node("Cast", [half], [name], to=FLOAT))
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def fp16_onnx_outputs(path: Path, inputs: list[np.ndarray], names: list[str]) -> list[dict]:
    """FP16-rounded outputs of the graph at ``path``, per input."""
    from oakpipe.verify.runners import onnx_session

    model = with_fp16_rounding(onnx.load(str(path)))
    session = onnx_session(model.SerializeToString())
    input_name = session.get_inputs()[0].name
    results = []
    for x in inputs:
        values = session.run(names, {input_name: round16(x)})
        results.append({n: np.asarray(v, np.float32) for n, v in zip(names, values)})
    return results
