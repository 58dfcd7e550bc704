"""FP16 emulation for a model that started as ONNX (there is no PyTorch module to hook).

Each node runs on its own in onnxruntime, on inputs rounded to float16, and its outputs
are rounded to float16 before the next node sees them: values past 65504 become inf, as
on the device. Arithmetic inside a node stays float32 (as the PyTorch-side emulation).
One small session per node is cheap next to the compile (about 5 ms each).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

FLOAT = onnx.TensorProto.FLOAT
UNSUPPORTED = {"If", "Loop", "Scan"}  # subgraphs: not emulated node by node


def round16(value: np.ndarray) -> np.ndarray:
    if value.dtype == np.float32:
        with np.errstate(over="ignore"):
            return value.astype(np.float16).astype(np.float32)
    return value


class NodeByNode:
    """A graph split into one onnxruntime session per node."""

    def __init__(self, path: Path) -> None:
        model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
        graph = model.graph
        if any(node.op_type in UNSUPPORTED for node in graph.node):
            raise ValueError("graphs with control flow are not emulated node by node")
        self.opsets = list(model.opset_import)
        self.types = {v.name: v.type for v in list(graph.value_info) + list(graph.input) + list(graph.output)}
        self.constants = {i.name: round16(numpy_helper.to_array(i)) for i in graph.initializer}
        self.input_name = next(i.name for i in graph.input if i.name not in self.constants)
        self.nodes = list(graph.node)
        self.sessions: list = [None] * len(self.nodes)

    def session(self, index: int):
        import onnxruntime as ort

        if self.sessions[index] is None:
            node = self.nodes[index]
            inputs = [n for n in dict.fromkeys(node.input) if n]
            constants = [numpy_helper.from_array(self.constants[n], n) for n in inputs if n in self.constants]
            graph = helper.make_graph(
                [node], f"node{index}",
                [self.port(n) for n in inputs if n not in self.constants],
                [self.port(n) for n in node.output if n],
                constants,
            )
            model = helper.make_model(graph, opset_imports=self.opsets)
            model.ir_version = min(model.ir_version, 9)
            self.sessions[index] = ort.InferenceSession(model.SerializeToString(),
                                                        providers=["CPUExecutionProvider"])
        return self.sessions[index]

    def port(self, name: str):
        if name in self.types:
            return helper.make_value_info(name, self.types[name])
        return helper.make_tensor_value_info(name, FLOAT, None)

    def run(self, x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        values: dict[str, np.ndarray] = {}
        values[self.input_name] = round16(x)
        for index in range(len(self.nodes)):
            session = self.session(index)
            feeds = {i.name: values[i.name] for i in session.get_inputs()}
            outputs = session.run(None, feeds)
            for name, value in zip([o.name for o in session.get_outputs()], outputs):
                values[name] = round16(np.asarray(value))
        return {n: values[n] for n in names}


def fp16_onnx_outputs(path: Path, inputs: list[np.ndarray], names: list[str]) -> list[dict] | None:
    """FP16-rounded outputs per input, or None when the graph cannot be split this way."""
    try:
        emulator = NodeByNode(path)
    except ValueError:
        return None
    return [emulator.run(x, names) for x in inputs]
