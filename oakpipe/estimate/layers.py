"""The layers an RVC2 runs, read from an ONNX graph: what the latency model costs.

The MYRIAD compiler does not run the ONNX nodes one by one: Reshape-like nodes cost nothing,
an activation after a convolution is fused into it (ReLU, clamps, BatchNorm folded), x *
sigmoid(x) is one Swish stage, and constant subgraphs are folded away. This module applies
those rules to a shape-inferred graph and describes every remaining layer by what decides
its cost: its multiply-accumulates, whether it is a depthwise convolution, and the FP16
bytes it reads and writes. The tables are plain JSON, so the calibration models' graphs are
stored once (``benchmarks/rvc2/graphs``) and never rebuilt at test time.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import shape_inference

FP16_BYTES = 2
MAC_OPS = {"Conv", "ConvTranspose", "MatMul", "Gemm"}
# Memory-bound on the SHAVEs: cost follows the bytes they read and write.
MEMORY_OPS = {
    "Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid", "Tanh", "HardSigmoid",
    "HardSwish", "Exp", "Log", "Sqrt", "Pow", "Neg", "Abs", "Max", "Min", "Sum", "Elu", "Selu", "Softplus", "Erf",
    "Floor", "Ceil", "Round", "Sign", "Reciprocal", "Equal", "Greater", "Less", "Not", "And", "Or", "Where",
    "BatchNormalization", "InstanceNormalization", "LRN", "MaxPool", "AveragePool", "GlobalAveragePool",
    "GlobalMaxPool", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL2", "Softmax", "LogSoftmax",
    "Concat", "Split", "Slice", "Resize", "Upsample", "Transpose", "Pad", "Tile", "Expand", "DepthToSpace",
    "SpaceToDepth", "Gather", "Swish", "Mish", "ArgMax", "TopK",
}
# Views and no-ops: the compiler removes them or only relabels the tensor.
# Memory-bound too, but each element costs a transcendental function (exp, log, division).
MATH_OPS = {"Swish", "Sigmoid", "Tanh", "Exp", "Log", "Softmax", "LogSoftmax", "Mish", "Elu", "Selu", "Softplus",
            "Erf", "Pow", "Sqrt", "Div", "Reciprocal", "HardSwish"}
FREE_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Cast", "Shape", "Constant",
            "ConstantOfShape", "Size"}
FUSED_INTO_CONV = {"Relu", "LeakyRelu", "Clip", "PRelu", "BatchNormalization"}
FUSED_INTO_ELTWISE = {"Relu", "Clip"}  # the compiler's Eltwise stages take a ReLU post-op
ELTWISE = {"Add", "Sub", "Mul", "Max", "Min", "Sum"}


@dataclass(frozen=True)
class Layer:
    name: str
    op: str  # the ONNX op, or "Conv+Relu", "Swish" after fusion
    kind: str  # "conv" | "depthwise" | "matmul" | "memory" | "math" | "unknown"
    macs: int
    in_bytes: int  # FP16 activations read (constants excluded)
    out_bytes: int  # FP16 activations written
    weight_bytes: int  # FP16 weights


def layers_of(model: onnx.ModelProto) -> list[Layer]:
    """The device's layers, in graph order, from a shape-inferred copy of ``model``."""
    try:
        model = shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:
        pass  # shapes then come only from what the file declares
    return _Walker(model).layers()


class _Walker:
    def __init__(self, model: onnx.ModelProto) -> None:
        g = model.graph
        self.graph = g
        self.shapes: dict[str, list[int]] = {}
        for value in list(g.input) + list(g.value_info) + list(g.output):
            dims = value.type.tensor_type.shape.dim
            if value.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
                self.shapes[value.name] = [d.dim_value for d in dims]
        self.constants = {i.name: list(i.dims) for i in g.initializer}
        self.consumers: dict[str, list] = {}
        for node in g.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.outputs = {o.name for o in g.output}

    def nbytes(self, name: str) -> int:
        shape = self.shapes.get(name)
        return int(np.prod(shape)) * FP16_BYTES if shape is not None else 0

    def _is_constant(self, node) -> bool:
        if node.op_type == "Constant":
            return True
        inputs = [n for n in node.input if n]
        return bool(inputs) and all(n in self.constants for n in inputs)

    def _only_consumer(self, name: str):
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 and name not in self.outputs else None

    def layers(self) -> list[Layer]:
        layers: list[Layer] = []
        skip: set[str] = set()  # fused nodes, by their first output (protobuf wrappers are not stable)
        for node in self.graph.node:
            if node.output[0] in skip:
                continue
            if self._is_constant(node):
                for name in node.output:
                    self.constants[name] = self.shapes.get(name, [])
                continue
            if node.op_type in ("Shape", "Size") and node.input[0] in self.shapes:
                self.constants[node.output[0]] = []  # a static shape is a constant
                continue
            if node.op_type in FREE_OPS:
                continue
            layer, fused = self._layer(node)
            skip.update(n.output[0] for n in fused)
            if layer is not None:
                layers.append(layer)
        return layers

    def _layer(self, node) -> tuple[Layer | None, list]:
        name = node.name or node.output[0]
        inputs = [n for n in node.input if n and n not in self.constants]
        in_bytes = sum(self.nbytes(n) for n in dict.fromkeys(inputs))
        weights = sum(int(np.prod(self.constants[n])) * FP16_BYTES for n in node.input if n in self.constants
                      and self.constants[n])
        out = node.output[0]
        fused: list = []
        op = node.op_type
        if op in ("Conv", "ConvTranspose"):
            while (nxt := self._only_consumer(out)) is not None and nxt.op_type in FUSED_INTO_CONV:
                fused.append(nxt)
                op += "+" + nxt.op_type
                out = nxt.output[0]
            macs, depthwise = self._conv_macs(node)
            kind = "depthwise" if depthwise else "conv"
            if not macs:  # no static shapes: the model cannot cost it
                kind, op = "unknown", op + " (shape unknown)"
            return Layer(name, op, kind, macs, in_bytes, self.nbytes(out), weights), fused
        if op in ("MatMul", "Gemm"):
            return Layer(name, op, "matmul", self._matmul_macs(node), in_bytes, self.nbytes(out), weights), fused
        if op == "Sigmoid":
            mul = self._only_consumer(out)
            if mul is not None and mul.op_type == "Mul" and node.input[0] in mul.input:
                return Layer(name, "Swish", "math", 0, in_bytes, self.nbytes(mul.output[0]), 0), [mul]
        if op in ELTWISE:
            while (nxt := self._only_consumer(out)) is not None and nxt.op_type in FUSED_INTO_ELTWISE:
                fused.append(nxt)
                op += "+" + nxt.op_type
                out = nxt.output[0]
            return Layer(name, op, "memory", 0, in_bytes, self.nbytes(out), weights), fused
        out_bytes = sum(self.nbytes(o) for o in node.output if o)
        kind = "math" if op in MATH_OPS else "memory" if op in MEMORY_OPS else "unknown"
        return Layer(name, op, kind, 0, in_bytes, out_bytes, weights), fused

    def _conv_macs(self, node) -> tuple[int, bool]:
        w = self.constants.get(node.input[1]) or self.shapes.get(node.input[1])
        x, y = self.shapes.get(node.input[0]), self.shapes.get(node.output[0])
        if not w or not x or not y:
            return 0, False
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        kernel = int(np.prod(w[2:]))
        if node.op_type == "Conv":
            macs = int(np.prod(y)) * w[1] * kernel
            depthwise = group > 1 and w[1] == 1
        else:
            macs = int(np.prod(x)) * w[1] * kernel
            depthwise = group > 1 and w[1] == 1
        return macs, depthwise

    def _matmul_macs(self, node) -> int:
        a, y = self.shapes.get(node.input[0]) or self.constants.get(node.input[0]), self.shapes.get(node.output[0])
        if not a or not y:
            return 0
        if node.op_type == "Gemm" and next((x.i for x in node.attribute if x.name == "transA"), 0):
            return int(np.prod(y)) * a[0]
        return int(np.prod(y)) * a[-1]


def graph_io(model: onnx.ModelProto) -> tuple[int, int]:
    """(input elements, as the camera's U8 frame; output bytes, FP16) of a graph."""
    inits = {i.name for i in model.graph.initializer}

    def numel(value) -> int:
        return int(np.prod([max(d.dim_value, 1) for d in value.type.tensor_type.shape.dim]))
    inputs = sum(numel(v) for v in model.graph.input if v.name not in inits)
    outputs = sum(numel(v) for v in model.graph.output) * FP16_BYTES
    return inputs, outputs


@dataclass(frozen=True)
class LayerTable:
    layers: list[Layer]
    input_bytes: int  # U8 frame in
    output_bytes: int  # FP16 out
    source: str = ""


def table_of(model: onnx.ModelProto, source: str = "") -> LayerTable:
    inputs, outputs = graph_io(model)
    return LayerTable(layers_of(model), inputs, outputs, source)


def table_of_onnx(path: Path, source: str = "") -> LayerTable:
    return table_of(onnx.load(str(path)), source or str(path))


def save_table(table: LayerTable, path: Path) -> None:
    data = {"source": table.source, "input_bytes": table.input_bytes, "output_bytes": table.output_bytes,
            "fields": list(Layer.__dataclass_fields__), "layers": [list(asdict(x).values()) for x in table.layers]}
    path.write_text(json.dumps(data, separators=(",", ":")) + "\n")


def load_table(path: Path) -> LayerTable:
    data = json.loads(Path(path).read_text())
    layers = [Layer(**dict(zip(data["fields"], row))) for row in data["layers"]]
    return LayerTable(layers, data["input_bytes"], data["output_bytes"], data.get("source", ""))
