"""Preflight probes: the device graph's nodes as small ONNX graphs the MYRIAD compiler is
asked about one by one (see ``oakpipe.verify.preflight`` for what a probe feeds its node,
and what is folded or left out instead of probed).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from oakpipe.blame import pytorch_module_of

log = logging.getLogger(__name__)

PROBE_FORMAT = 2  # bump when the way probes are built changes: old cache entries then miss
CACHE_NAME = "preflight_probes.json"
# Float initializers larger than this are replaced by a fixed pattern in probes: support
# depends on their shape and type, not on the trained values, and probes then dedupe
# across layers of the same shape and survive retraining. Small tensors (pads, axes,
# sizes, scales, slopes) keep their exact values, which the compiler may depend on.
EXACT_CONSTANT_LIMIT = 64

# Multi-node patterns the compiler fuses into one layer, probed whole (Graph.fused_pattern).
FUSED_PATTERNS = {"mvn": "as the LayerNorm pattern (ReduceMean ... Div) ending here, which the compiler fuses into MVN"}

# Ops no device graph should be folded through here even with constant inputs.
NONDETERMINISTIC = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial"}
# Pure plumbing (Identity, Squeeze, Flatten, Reshape to a constant shape) needs no special
# case: its probe becomes "Parameter -> Result" once the compiler removes it, and the
# 2021.4 compiler accepts that (checked for Identity, Squeeze, Unsqueeze, Flatten).


@dataclass(frozen=True)
class Problem:
    kind: str  # "unsupported_op" | "compiler_crash" | "dynamic_shape" | "input_type" | "memory"
    message: str
    op_type: str | None = None
    node: str | None = None
    module: str | None = None

    def line(self) -> str:
        where = []
        if self.op_type:
            where.append(f"op {self.op_type}")
        if self.node:
            where.append(f"ONNX node {self.node}")
        if self.module:
            where.append(f"PyTorch module {self.module}")
        return (", ".join(where) + ": " if where else "") + self.message


@dataclass
class ProbePlan:
    probes: dict[str, list] = field(default_factory=dict)  # hash -> the nodes it stands for
    graphs: dict[str, bytes] = field(default_factory=dict)  # hash -> serialized probe model
    problems: list[Problem] = field(default_factory=list)
    inconclusive: list[str] = field(default_factory=list)
    controls: dict[str, bytes] = field(default_factory=dict)  # hash of an adapted probe -> its adapter alone
    fused: dict[str, str] = field(default_factory=dict)  # hash of a pattern probe -> what the compiler fuses
    folded: int = 0
    not_probed: int = 0

    def add(self, probe: onnx.ModelProto, node) -> str:
        data = probe.SerializeToString(deterministic=True)
        digest = hashlib.sha256(data).hexdigest()
        self.probes.setdefault(digest, []).append(node)
        self.graphs[digest] = data
        return digest

    def controls_to_check(self, verdicts: dict) -> dict[str, bytes]:
        """Control graphs of the adapted probes the compiler refused, by their own hash."""
        return {hashlib.sha256(data).hexdigest(): data for digest, data in self.controls.items()
                if not verdicts[digest]["ok"]}


class Graph:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        g = model.graph
        self.types: dict[str, tuple[int, list | None]] = {}  # name -> (elem_type, dims: int or str or None)
        for value in list(g.input) + list(g.value_info) + list(g.output):
            t = value.type.tensor_type
            if value.type.HasField("tensor_type") and t.elem_type:
                dims = None
                if t.HasField("shape"):
                    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
                self.types[value.name] = (t.elem_type, dims)
        self.constants: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        self.initializer_names = set(self.constants)
        for init in g.initializer:
            self.types.setdefault(init.name, (init.data_type, list(init.dims)))

    # shapes ---------------------------------------------------------------------------
    def static_shape(self, name: str) -> list[int] | None:
        if name in self.constants:
            return list(self.constants[name].shape)
        entry = self.types.get(name)
        if not entry or entry[1] is None or any(not isinstance(d, int) or d <= 0 for d in entry[1]):
            return None
        return entry[1]

    def describe_dims(self, name: str) -> str:
        entry = self.types.get(name)
        if not entry or entry[1] is None:
            return "unknown shape"
        return "[" + ", ".join(str(d) if isinstance(d, int) and d > 0 else str(d or "?") for d in entry[1]) + "]"

    def input_problems(self):
        for value in self.model.graph.input:
            if value.name in self.initializer_names:
                continue
            elem = value.type.tensor_type.elem_type
            if elem in (onnx.TensorProto.INT64, onnx.TensorProto.DOUBLE, onnx.TensorProto.UINT64):
                kind_name = onnx.TensorProto.DataType.Name(elem)
                yield Problem("input_type", f"graph input {value.name!r} is {kind_name}: the MyriadX has no 64-bit "
                                            "types and the camera sends U8 frames")
            if self.static_shape(value.name) is None:
                yield Problem("dynamic_shape", f"graph input {value.name!r} has dynamic dims "
                                               f"{self.describe_dims(value.name)}: blobs need a static shape")

    # constant folding and probes -------------------------------------------------------
    def _fold(self, node) -> np.ndarray | list | None:
        """The node's output values if all its inputs are known here, else None."""
        if node.domain not in ("", "ai.onnx") or node.op_type in NONDETERMINISTIC:
            return None
        if node.op_type == "Shape":
            shape = self.static_shape(node.input[0])
            if shape is None:
                return None
            attrs = {a.name: a.i for a in node.attribute}
            return [np.array(shape[attrs.get("start", 0):attrs.get("end", len(shape))] if attrs else shape, np.int64)]
        if node.op_type == "Size":
            shape = self.static_shape(node.input[0])
            return None if shape is None else [np.array(int(np.prod(shape)), np.int64)]
        if not all(name == "" or name in self.constants for name in node.input):
            return None
        if node.op_type != "Constant" and not [n for n in node.input if n]:
            return None
        from onnx.reference import ReferenceEvaluator

        try:
            single = helper.make_model(
                helper.make_graph([node], "fold", [], [helper.make_empty_tensor_value_info(o) for o in node.output],
                                  [numpy_helper.from_array(self.constants[n], n) for n in dict.fromkeys(node.input) if n]),
                opset_imports=self.model.opset_import, ir_version=self.model.ir_version)
            return list(ReferenceEvaluator(single).run(None, {}))
        except Exception as exc:  # an op or a case the reference evaluator lacks
            log.debug("not folded here, left to the compiler: %s %s: %s", node.op_type, node.name, exc)
            return None

    def plan_probes(self) -> ProbePlan:
        plan = ProbePlan()
        producers = {o: n for n in self.model.graph.node for o in n.output if o}
        for node in self.model.graph.node:
            values = self._fold(node)
            if values is not None:
                for name, value in zip(node.output, values):
                    self.constants[name] = np.asarray(value)
                plan.folded += 1
                continue
            if not [n for n in node.input if n and n not in self.constants]:
                # Constant inputs we could not evaluate (an op the reference evaluator
                # lacks): a probe with no graph input is refused by the compiler
                # ("!out.networkInputs.empty()") whatever the op, so leave it to the
                # compiler's own constant folding and say so.
                plan.inconclusive.append(f"{node.op_type} ({node.name or node.output[0]}): all its inputs are "
                                         "constant but could not be folded here; left to the compiler")
                plan.not_probed += 1
                continue
            dynamic = [n for n in node.input if n and n not in self.constants and self.static_shape(n) is None]
            if dynamic:
                plan.not_probed += 1
                continue
            produced = [o for o in node.output if o and self.static_shape(o) is None and o in self.types
                        and self.types[o][1] is not None]
            if produced:
                plan.problems.append(Problem(
                    "dynamic_shape", f"its output {produced[0]!r} has dynamic dims {self.describe_dims(produced[0])} "
                    "(a shape that depends on the data or on a symbolic size): blobs need static shapes",
                    node.op_type, node.name or node.output[0], pytorch_module_of(node.name) if node.name else None))
                plan.not_probed += 1
                continue
            self._plan_probe(plan, node)
            pattern = self.fused_pattern(node, producers)
            if pattern:
                plan.fused[self._plan_probe(plan, node, pattern)] = FUSED_PATTERNS["mvn"]
        return plan

    def _plan_probe(self, plan: ProbePlan, node, pattern: tuple = ()) -> str:
        probe, adapted = self.make_probe(node, pattern=pattern)
        digest = plan.add(probe, node)
        if adapted:
            control = self.make_probe(node, control=True, pattern=pattern)[0]
            plan.controls[digest] = control.SerializeToString(deterministic=True)
        return digest

    def fused_pattern(self, node, producers: dict) -> tuple:
        """The nodes before ``node`` that the compiler fuses with it into one layer, or ().

        One-node probes cannot see a fusion. The one that matters: LayerNorm as exported,
        (x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps), becomes one MVN layer, which the
        MYRIAD plugin takes on 3D and 4D tensors only (efficientvit's rank-2 head), although
        every node of it compiles alone.
        """
        if node.op_type != "Div":
            return ()
        sub = producers.get(node.input[0])
        mean = producers.get(sub.input[1]) if sub is not None and sub.op_type == "Sub" else None
        if sub is None or mean is None or mean.op_type != "ReduceMean" or mean.input[0] != sub.input[0]:
            return ()
        found, stack = {id(sub): sub, id(mean): mean}, [node.input[1]]
        while stack and len(found) <= 8:
            name = stack.pop()
            producer = producers.get(name)
            if name == sub.input[0] or producer is None or name in self.constants or id(producer) in found:
                continue
            found[id(producer)] = producer
            stack += [n for n in producer.input if n]
        if len(found) > 8 or "Sqrt" not in {n.op_type for n in found.values()}:
            return ()
        return tuple(n for n in self.model.graph.node if id(n) in found)  # graph order is topological

    def make_probe(self, node, control: bool = False, pattern: tuple = ()) -> tuple[onnx.ModelProto, bool]:
        """One node alone (or ending ``pattern``), with canonical names so that equal layers
        give equal bytes.

        Returns the probe and whether any input had to be adapted. The MYRIAD plugin reads
        a graph input as a batch-first image (it compiles it at batch 1, and lays out inputs
        of other ranks its own way), so only a (1, C, H, W) tensor is fed to the node as it
        is. Any other tensor (a leading dim that is not 1, as in the (patches, ...) unfold of
        ViT, Swin and MobileViT, or a rank other than 4) reaches the node as it does in the
        whole graph: an intermediate, made by a Reshape with a constant shape from a
        (1, C, H, W) input (``adapter_shape``). ``control`` builds that adapter alone, to
        tell the node's own rejection from the adapter's.

        ``pattern``: the nodes before ``node`` that the compiler fuses with it into one layer
        (``fused_patterns``); they are probed together, their inner tensors named t0, t1...
        """
        inputs, initializers, rename, adapters, controls = [], [], {}, [], []
        body = list(pattern) + [node]
        inner = [o for n in pattern for o in n.output if o]
        rename.update({name: f"t{k}" for k, name in enumerate(inner)})
        external = [n for m in body for n in m.input if n not in inner] if pattern else list(node.input)
        for i, name in enumerate(external):
            if not name or name in rename:
                continue
            if name in self.constants:
                rename[name] = f"c{i}"
                initializers.append(numpy_helper.from_array(canonical_constant(self.constants[name]), f"c{i}"))
                continue
            rename[name] = f"x{i}"
            elem, _ = self.types[name]
            shape = self.static_shape(name)
            fed = adapter_shape(shape)  # type: ignore[arg-type]  # an unknown shape raises TypeError, as it always did
            if fed is None:
                inputs.append(helper.make_tensor_value_info(f"x{i}", elem, shape))
                continue
            inputs.append(helper.make_tensor_value_info(f"a{i}", elem, fed))
            initializers.append(numpy_helper.from_array(np.array(shape, np.int64), f"s{i}"))
            adapters.append(helper.make_node("Reshape", [f"a{i}", f"s{i}"], [f"x{i}"], name=f"probe_adapter{i}"))
            if control:
                # An adapter alone would be Parameter -> Result, which the compiler reduces
                # to nothing: a ReLU keeps the reshaped tensor an intermediate, as here.
                adapters.append(helper.make_node("Relu", [f"x{i}"], [f"r{i}"], name=f"probe_control{i}"))
                controls.append(helper.make_tensor_value_info(f"r{i}", elem, shape))
        if control:
            graph = helper.make_graph(adapters, "oakpipe_probe_control", inputs, controls, initializers)
            return self._probe_model(graph), bool(controls)
        outputs, consumers = [], []
        for j, name in enumerate(node.output):
            if not name:
                continue
            rename[name] = f"y{j}"
            if name not in self.types:
                outputs.append(helper.make_empty_tensor_value_info(f"y{j}"))
                continue
            elem, _ = self.types[name]
            if elem == onnx.TensorProto.BOOL:
                # A boolean graph output fails in the compiler whatever the op ("Stage node
                # y0 (Logical_NOT) types check error: output #0 has type FP16, but one of
                # [S32] is expected"), while Not/And/Greater feeding a Cast or a Where compile
                # in a whole model. A device graph's booleans always feed something
                # numeric, so the probe gives this one a consumer: Cast to float.
                consumers.append(helper.make_node("Cast", [f"y{j}"], [f"y{j}_float"], to=onnx.TensorProto.FLOAT,
                                                  name="probe_consumer"))
                elem, name = onnx.TensorProto.FLOAT, name
                outputs.append(helper.make_tensor_value_info(f"y{j}_float", elem, self.static_shape(name)))
                continue
            outputs.append(helper.make_tensor_value_info(f"y{j}", elem, self.static_shape(name)))
        probe_nodes = []
        for k, original in enumerate(body):
            probe_node = onnx.NodeProto()
            probe_node.CopyFrom(original)
            probe_node.name = "probe" if original is node else f"probe_pattern{k}"
            probe_node.doc_string = ""
            probe_node.input[:] = [rename.get(n, "") for n in original.input]
            probe_node.output[:] = [rename.get(n, "") for n in original.output]
            probe_nodes.append(probe_node)
        graph = helper.make_graph(adapters + probe_nodes + consumers, "oakpipe_probe", inputs, outputs, initializers)
        return self._probe_model(graph), bool(adapters)

    def _probe_model(self, graph: onnx.GraphProto) -> onnx.ModelProto:
        return helper.make_model(graph, opset_imports=self.model.opset_import, ir_version=self.model.ir_version,
                                 producer_name="oakpipe-preflight", producer_version=str(PROBE_FORMAT))

    # estimates -------------------------------------------------------------------------


def adapter_shape(shape: list[int]) -> list[int] | None:
    """The (1, C, H, W) graph input a probe reshapes into ``shape``; None: fed as it is.

    Leading dims are merged into C and missing ones are 1: (128, 8, 2, 2) -> (1, 1024, 2, 2),
    (1, 1280) -> (1, 1, 1, 1280), (1, 197, 192) -> (1, 1, 197, 192).
    """
    if len(shape) == 4 and shape[0] == 1:
        return None
    dims = [1] * (3 - len(shape)) + list(shape)
    while len(dims) > 3:
        dims = [dims[0] * dims[1]] + dims[2:]
    return [1] + dims


def canonical_constant(value: np.ndarray) -> np.ndarray:
    value = np.asarray(value)
    if value.dtype.kind == "f" and value.size > EXACT_CONSTANT_LIMIT:
        # A fixed, non-degenerate pattern (not all zeros, which a compiler might special-case).
        pattern = ((np.arange(value.size) % 7) - 3).astype(value.dtype) / 8
        return pattern.reshape(value.shape)
    return value


def adapted_inputs(node, graph: Graph) -> str:
    """The inputs of ``node`` that a probe reaches through a Reshape, with their shapes."""
    names = [n for n in dict.fromkeys(node.input) if n and n not in graph.constants
             and adapter_shape(graph.static_shape(n) or [1, 1, 1, 1]) is not None]
    return ", ".join(f"{n} {graph.describe_dims(n)}" for n in names) or "(none)"


def unprobe_names(message: str, node, inputs: bool = True) -> str:
    """The compiler names the probe's tensors (x0, c1, y0): give them the model's names.
    ``inputs`` False: a pattern probe, whose inputs are not numbered as the node's."""
    pairs = (("x", node.input), ("c", node.input), ("y", node.output)) if inputs else (("y", node.output),)
    for prefix, names in pairs:
        for i, name in enumerate(names):
            if name:
                message = message.replace(f'"{prefix}{i}"', f'"{name}"')
    return message
