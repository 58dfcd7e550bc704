"""MyriadX preflight: will the 2021.4 MYRIAD compiler take this graph, and how fast can it run?

What is supported is asked of the compiler itself, not written down by hand: every node of
the device graph becomes a one-node ONNX "probe" (its own attributes, its constant inputs
kept as initializers, its other inputs as graph inputs with their inferred static shapes
and types), and all probes are compiled in one worker process
(``oakpipe.toolchain.compile_probe_batch``). A probe the compiler refuses is a problem
naming the op, the ONNX node and the PyTorch module, found before the whole model is
compiled. Verdicts are cached per probe (a hash of the probe graph and the compiler
version) in ``toolchain_dir()/preflight_probes.json``, so a second preflight of the same
graph, or of a graph with the same layers, compiles nothing.

A probe feeds its node what the whole graph feeds it: a (1, C, H, W) tensor goes in as a
graph input; any other (a leading dim that is not the batch, as in the (patches, ...)
unfold of ViT, Swin and MobileViT, or another rank) is made inside the probe by a Reshape
with a constant shape, since the compiler reads graph inputs as batch-1 images. If the
compiler refuses that Reshape itself, the node is "inconclusive", never a rejection. A
LayerNorm pattern, which the compiler fuses into one MVN layer, is also probed whole.

Not every node is probed:
- nodes whose inputs are all constant (Constant, a ``Shape`` of a static tensor, and
  anything computed only from those) are folded here, as the compiler's own constant
  folding does before it compiles; their values become the probes' initializers. Probing
  them would give false rejections (a Reshape whose target shape arrives as a graph input
  is "dynamic" to the compiler, though in the model it is a constant);
- nodes with an input of unknown or symbolic shape cannot be probed statically; the
  dynamic dims are reported where they appear (a graph input, or the node that makes them).

The estimates (MACs, FP16 weights, activations against CMX and DDR, frames per second)
come from ONNX shape inference alone and need no compiler.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from oakpipe.errors import UnsupportedModelError, UserError
from oakpipe.stages.blob import clean_compiler_message, pytorch_module_of

log = logging.getLogger(__name__)

# --- the chip (Luxonis RVC2 documentation; /work/shared/notes/depthai.md) ----------------
CMX_BYTES = int(2.5 * 1024 * 1024)  # on-chip memory shared by the SHAVEs
DDR_USABLE_BYTES = 358 * 1024 * 1024  # of 512 MiB, what a pipeline can use
FP16_BYTES = 2
TARGET_FPS = 10.0
COMPUTE_BOUND_FPS = 60.0  # above this the MACs do not decide the frame rate (camera: 30 FPS default)
# Effective MyriadX throughput for CNNs compiled with 6 SHAVEs, in GMAC/s, from published
# figures: FastDepth (just under 1 GMAC) runs about 30 FPS with 6 SHAVEs (~25-30 GMAC/s),
# and Luxonis' rule of thumb puts 1-2 GMAC models at 10-25 FPS (10-50 GMAC/s, centred
# around 20-30). Memory-bound layers (large activations, depthwise convs, elementwise
# chains) pull it to the low end; dense 3x3 convs at moderate resolution to the high end.
EFFECTIVE_GMACS = (15.0, 40.0)
FPS_BASIS = (
    "FPS = GMAC / effective throughput of 15-40 GMAC/s, from Luxonis' published RVC2 figures "
    "at 6 SHAVEs (FastDepth, <1 GMAC, ~30 FPS; 1-2 GMAC models at 10-25 FPS); counts only "
    "Conv/ConvTranspose/MatMul/Gemm MACs, not memory traffic, camera or USB transfer"
)

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


# --- the report ---------------------------------------------------------------------------

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


@dataclass(frozen=True)
class Estimates:
    macs: int
    gmac: float
    params: int
    fp16_weight_bytes: int
    largest_activation_bytes: int
    largest_activation_tensor: str | None
    largest_activation_shape: tuple[int, ...] | None
    peak_live_activation_bytes: int
    fits_cmx: bool
    cmx_verdict: str
    ddr_estimate_bytes: int
    fits_ddr: bool
    ddr_verdict: str
    estimated_fps: tuple[float, float] | None  # (low, high); None when there are no MACs
    fps_basis: str
    mac_formula: str = (
        "Conv: N*Cout*Hout*Wout * (Cin/group)*kH*kW; ConvTranspose: N*Cin*Hin*Win * (Cout/group)*kH*kW; "
        "MatMul: prod(output shape) * K; Gemm: M*N*K"
    )


@dataclass(frozen=True)
class ProbeStats:
    nodes: int
    folded: int  # constant subgraphs, folded as the compiler does
    not_probed: int  # dynamic or unknown input shapes
    probes: int  # distinct probe graphs
    cached: int
    compiled: int
    seconds: float


@dataclass(frozen=True)
class PreflightReport:
    model: str
    problems: tuple[Problem, ...]
    warnings: tuple[str, ...]
    inconclusive: tuple[str, ...]
    estimates: Estimates
    stats: ProbeStats
    compiler: str = "OpenVINO 2021.4 MYRIAD (MyriadX, RVC2)"

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        data = json.loads(json.dumps(asdict(self)))  # plain JSON types: lists, not tuples
        data["ok"] = self.ok
        return data

    def summary(self) -> str:
        """One line for the progress display when nothing needs the user's attention."""
        e, s = self.estimates, self.stats
        speed = ""
        if e.estimated_fps:
            low, high = e.estimated_fps
            speed = f", about {low:.0f}-{high:.0f} FPS on an RVC2" if high <= COMPUTE_BOUND_FPS else ""
        return (f"MyriadX preflight passes: {s.probes} op probes ({s.cached} cached), {e.gmac:.3g} GMAC, "
                f"largest activation {_mib(e.largest_activation_bytes)}{speed}")

    def lines(self) -> list[str]:
        e, s = self.estimates, self.stats
        verdict = "passes" if self.ok else f"FAILS ({len(self.problems)} problem{'s' * (len(self.problems) != 1)})"
        lines = [f"MyriadX preflight of {self.model}: {verdict}"]
        lines += [f"  problem: {p.line()}" for p in self.problems]
        lines += [f"  warning: {w}" for w in self.warnings]
        lines += [f"  inconclusive: {i}" for i in self.inconclusive]
        lines.append(f"  compute: {e.gmac:.3g} GMAC, {e.params:,} parameters ({_mib(e.fp16_weight_bytes)} in FP16)")
        lines.append(f"  memory: {e.cmx_verdict}; {e.ddr_verdict}")
        if e.estimated_fps and e.estimated_fps[0] > COMPUTE_BOUND_FPS:
            lines.append(f"  speed: compute allows over {COMPUTE_BOUND_FPS:.0f} FPS on an RVC2; the camera "
                         "and the transfer to the host set the frame rate")
        elif e.estimated_fps:
            low, high = e.estimated_fps
            lines.append(f"  speed: about {low:.0f}-{high:.0f} FPS on an RVC2 ({e.fps_basis})")
        lines.append(f"  probes: {s.probes} distinct graphs for {s.nodes} nodes ({s.folded} folded, "
                     f"{s.not_probed} not probed), {s.cached} cached, {s.compiled} compiled, {s.seconds:.1f} s")
        return lines


def raise_if_rejected(report: PreflightReport) -> None:
    """Stop a conversion before the whole-model compile: one line naming op, node and module."""
    if report.ok:
        return
    first = report.problems[0]
    more = f" (and {len(report.problems) - 1} more problem{'s' * (len(report.problems) > 2)})" \
        if len(report.problems) > 1 else ""
    hints = {
        "unsupported_op": "replace that operation in the model with ones the MyriadX supports",
        "compiler_crash": "replace that operation in the model with ones the MyriadX supports",
        "dynamic_shape": "export with a static input shape and constant sizes (no data-dependent shapes)",
        "input_type": "give the model float32 inputs (the camera's U8 frame is converted on the device)",
        "memory": "use a smaller input size or a smaller model",
    }
    raise UnsupportedModelError(f"MyriadX preflight: {first.line()}{more}",
                                hints.get(first.kind, "see `oakpipe verify` for the full preflight"))


# --- the preflight ------------------------------------------------------------------------

def preflight(device_onnx: Path, *, shaves: int = 6, use_cache: bool = True,
              timeout: float | None = None) -> PreflightReport:
    """Check a device graph against the MyriadX compiler and the RVC2's memories and speed.

    ``timeout``: seconds for all the probes together (default: the toolchain's); past it,
    an UnsupportedModelError says which probe the compiler was on (finished verdicts are
    cached, so a rerun with a larger --compile-timeout resumes).
    """
    started = time.perf_counter()
    device_onnx = Path(device_onnx)
    try:
        model = onnx.load(str(device_onnx))
    except Exception as exc:
        raise UserError(f"{device_onnx} is not an ONNX file: {exc}", "pass the device graph (*_device.onnx)") from exc
    try:
        inferred = shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:
        inferred = model  # shapes then come only from what the file declares
    graph = Graph(inferred)
    problems: list[Problem] = list(graph.input_problems())
    plan = graph.plan_probes()
    problems += plan.problems
    verdicts, cached, compiled = _verdicts(plan, plan.graphs, shaves, use_cache, timeout, graph)
    controls = plan.controls_to_check(verdicts)
    if controls:
        control_verdicts, more_cached, more_compiled = _verdicts(plan, controls, shaves, use_cache, timeout, graph)
        verdicts.update(control_verdicts)
        cached, compiled = cached + more_cached, compiled + more_compiled
    inconclusive: list[str] = list(plan.inconclusive)
    for digest, nodes in plan.probes.items():
        verdict = verdicts[digest]
        if verdict["ok"]:
            continue
        control = plan.controls.get(digest)
        faithful = control is None or verdicts[hashlib.sha256(control).hexdigest()]["ok"]
        for node in nodes:
            module = pytorch_module_of(node.name) if node.name else None
            name = node.name or node.output[0]
            message = _unprobe_names(verdict["message"], node)
            if not faithful:
                inconclusive.append(f"{node.op_type} ({name}{f', PyTorch module {module}' if module else ''}): "
                                    f"its input {_adapted_inputs(node, graph)} cannot be fed to a "
                                    f"probe as the whole graph feeds it; left to the whole-model compile "
                                    f"(the probe said: {message[:200]})")
                continue
            kind = "compiler_crash" if verdict.get("crashed") else "unsupported_op"
            how = f" {plan.fused[digest]}" if digest in plan.fused else ""
            problems.append(Problem(kind, f"the MYRIAD compiler rejects it{how}: {message}", node.op_type, name,
                                    module))
    estimates = graph.estimates()
    if not estimates.fits_ddr:
        problems.append(Problem("memory", estimates.ddr_verdict))
    warnings = estimate_warnings(estimates)
    stats = ProbeStats(len(inferred.graph.node), plan.folded, plan.not_probed, len(plan.probes), cached, compiled,
                       round(time.perf_counter() - started, 3))
    return PreflightReport(str(device_onnx), tuple(problems), tuple(warnings), tuple(inconclusive), estimates, stats)


def estimate(device_onnx: Path) -> Estimates:
    """The estimates alone (MACs, weights, activations, FPS): shape inference, no compiler."""
    model = onnx.load(str(device_onnx))
    try:
        model = shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:
        pass
    return Graph(model).estimates()


def estimate_warnings(estimates: Estimates) -> list[str]:
    """Below 10 FPS is "likely" when the middle of the range (geometric mean) is below it."""
    warnings = []
    if estimates.estimated_fps:
        low, high = estimates.estimated_fps
        if (low * high) ** 0.5 < TARGET_FPS:
            warnings.append(f"likely below {TARGET_FPS:.0f} FPS on an RVC2: about {low:.1f}-{high:.1f} FPS "
                            f"for {estimates.gmac:.2f} GMAC ({FPS_BASIS})")
        elif low < TARGET_FPS:
            warnings.append(f"may run below {TARGET_FPS:.0f} FPS on an RVC2 (about {low:.1f}-{high:.1f} FPS "
                            f"for {estimates.gmac:.2f} GMAC)")
    if not estimates.fits_cmx:
        warnings.append(estimates.cmx_verdict)
    return warnings


# --- the graph: shapes, constants, probes, estimates -----------------------------------------

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
        self.types: dict[str, tuple[int, list]] = {}  # name -> (elem_type, dims: int or str or None)
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
        if mean is None or mean.op_type != "ReduceMean" or mean.input[0] != sub.input[0]:
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
            fed = adapter_shape(shape)
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
    def macs_of(self, node) -> int:
        """Multiply-accumulates of one node from static shapes (0 when not a MAC op or unknown)."""
        op = node.op_type
        try:
            if op in ("Conv", "ConvTranspose"):
                x, w = self.static_shape(node.input[0]), self.static_shape(node.input[1])
                y = self.static_shape(node.output[0])
                # the weight's dim 1 is already per group (Cin/group, or Cout/group)
                kernel = int(np.prod(w[2:]))
                if op == "Conv":  # weight (Cout, Cin/group, k...): each output element
                    return int(np.prod(y)) * w[1] * kernel
                # ConvTranspose weight (Cin, Cout/group, k...): each input element scatters
                return int(np.prod(x)) * w[1] * kernel
            if op == "MatMul":
                a, y = self.static_shape(node.input[0]), self.static_shape(node.output[0])
                return int(np.prod(y)) * a[-1]
            if op == "Gemm":
                a, y = self.static_shape(node.input[0]), self.static_shape(node.output[0])
                trans_a = next((x.i for x in node.attribute if x.name == "transA"), 0)
                return int(np.prod(y)) * (a[0] if trans_a else a[1])
        except (TypeError, IndexError):
            return 0
        return 0

    def estimates(self) -> Estimates:
        g = self.model.graph
        macs = sum(self.macs_of(n) for n in g.node)
        float_kinds = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                       onnx.TensorProto.BFLOAT16)
        weights = [i for i in g.initializer if i.data_type in float_kinds]
        weights += [a.t for n in g.node if n.op_type == "Constant" for a in n.attribute
                    if a.name == "value" and a.t.data_type in float_kinds]
        params = sum(int(np.prod(t.dims)) for t in weights)
        # Activations: every non-constant tensor with a static shape, stored as FP16.
        sizes: dict[str, int] = {}
        for name in self.types:
            if name in self.constants:
                continue
            shape = self.static_shape(name)
            if shape is not None:
                sizes[name] = int(np.prod(shape)) * FP16_BYTES
        largest = max(sizes, key=sizes.get, default=None)
        largest_bytes = sizes.get(largest, 0) if largest else 0
        peak = self.peak_live(sizes)
        weight_bytes = params * FP16_BYTES
        fits_cmx = largest_bytes <= CMX_BYTES
        cmx = (f"largest activation {_mib(largest_bytes)} ({largest} {self.describe_dims(largest)}) "
               + (f"fits the {_mib(CMX_BYTES)} CMX" if fits_cmx else
                  f"exceeds the {_mib(CMX_BYTES)} CMX: those layers are tiled through DDR, which is slower")
               ) if largest else "no activation sizes known"
        ddr = weight_bytes + peak
        fits_ddr = ddr <= DDR_USABLE_BYTES
        ddr_text = (f"FP16 weights {_mib(weight_bytes)} + peak live activations {_mib(peak)} = {_mib(ddr)} "
                    + ("of" if fits_ddr else "EXCEEDS") + f" the ~{_mib(DDR_USABLE_BYTES)} usable DDR")
        fps = None
        if macs:
            gmac = macs / 1e9
            fps = (round(EFFECTIVE_GMACS[0] / gmac, 2), round(EFFECTIVE_GMACS[1] / gmac, 2))
        return Estimates(macs, round(macs / 1e9, 4), params, weight_bytes, largest_bytes, largest,
                         tuple(self.static_shape(largest)) if largest else None, peak, fits_cmx, cmx, ddr,
                         fits_ddr, ddr_text, fps, FPS_BASIS)

    def peak_live(self, sizes: dict[str, int]) -> int:
        """Largest sum of tensors alive at once, in the graph's (topological) order."""
        g = self.model.graph
        last_use: dict[str, int] = {}
        for index, node in enumerate(g.node):
            for name in node.input:
                last_use[name] = index
        outputs = {o.name for o in g.output}
        live = {i.name: sizes.get(i.name, 0) for i in g.input if i.name not in self.initializer_names}
        peak = sum(live.values())
        for index, node in enumerate(g.node):
            for name in node.output:
                if name in sizes:
                    live[name] = sizes[name]
            peak = max(peak, sum(live.values()))
            for name in list(live):
                if last_use.get(name, -1) <= index and name not in outputs:
                    del live[name]
        return peak


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


def _adapted_inputs(node, graph: Graph) -> str:
    """The inputs of ``node`` that a probe reaches through a Reshape, with their shapes."""
    names = [n for n in dict.fromkeys(node.input) if n and n not in graph.constants
             and adapter_shape(graph.static_shape(n) or [1, 1, 1, 1]) is not None]
    return ", ".join(f"{n} {graph.describe_dims(n)}" for n in names) or "(none)"


def _unprobe_names(message: str, node) -> str:
    """The compiler names the probe's tensors (x0, c1, y0): give them the model's names."""
    for prefix, names in (("x", node.input), ("c", node.input), ("y", node.output)):
        for i, name in enumerate(names):
            if name:
                message = message.replace(f'"{prefix}{i}"', f'"{name}"')
    return message


def _mib(n: int) -> str:
    return f"{n / 1024 / 1024:.2f} MiB" if n >= 1024 * 1024 else f"{n / 1024:.1f} KiB"


# --- compiling probes, with a cache -----------------------------------------------------------

def cache_path() -> Path:
    from oakpipe.toolchain import toolchain_dir

    return toolchain_dir() / CACHE_NAME


def _cache_key(digest: str, shaves: int) -> str:
    from oakpipe.toolchain import OPENVINO_VERSION

    return f"openvino-{OPENVINO_VERSION}/probe-v{PROBE_FORMAT}/shaves-{shaves}/{digest}"


def _load_cache() -> dict:
    try:
        data = json.loads(cache_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_cache(new: dict) -> None:
    """Merge with what is on disk now (another preflight may have written) and replace atomically."""
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _load_cache()
    data.update(new)
    fd, tmp = tempfile.mkstemp(prefix=".preflight-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=0, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _verdicts(plan: ProbePlan, graphs: dict[str, bytes], shaves: int, use_cache: bool, timeout: float | None,
              graph: Graph) -> tuple[dict, int, int]:
    digests = list(graphs)
    cache = _load_cache() if use_cache else {}
    verdicts = {d: cache[_cache_key(d, shaves)] for d in digests if _cache_key(d, shaves) in cache}
    missing = [d for d in digests if d not in verdicts]
    if missing:
        from oakpipe import toolchain

        budget = toolchain.DEFAULT_COMPILE_TIMEOUT if timeout is None else timeout
        with tempfile.TemporaryDirectory(prefix="oakpipe-probes-") as folder:
            paths = []
            for digest in missing:
                path = Path(folder) / f"{digest[:16]}.onnx"
                path.write_bytes(graphs[digest])
                paths.append(path)
            try:
                results = toolchain.compile_probe_batch(paths, shaves=shaves, timeout=budget)
            except toolchain.CompilerTimeout as exc:
                finished = dict(zip(missing, (_verdict_of(r) for r in exc.done)))
                _save_cache({_cache_key(d, shaves): v for d, v in finished.items()})  # a rerun resumes here
                stuck = plan.probes.get(missing[len(finished)], [None])[0] if len(finished) < len(missing) else None
                raise probe_timeout(budget, len(finished), len(missing), stuck, graph) from None
            for digest, result in zip(missing, results):
                verdicts[digest] = _verdict_of(result)
        _save_cache({_cache_key(d, shaves): verdicts[d] for d in missing})
    return verdicts, len(digests) - len(missing), len(missing)


def probe_timeout(seconds: float, finished: int, total: int, stuck, graph: Graph) -> UnsupportedModelError:
    """The compiler is working but this model's probes take longer than the budget."""
    where = ""
    if stuck is not None:
        module = pytorch_module_of(stuck.name) if stuck.name else None
        where = (f" (it was on op {stuck.op_type}, ONNX node {stuck.name or stuck.output[0]}"
                 + (f", PyTorch module {module}" if module else "") + ")")
    return UnsupportedModelError(
        f"MyriadX preflight: the MYRIAD compiler did not finish in {seconds:g} s on this model: "
        f"{finished} of {total} distinct probe graphs done{where}; its largest layers: "
        f"{describe_largest_layers(graph)}",
        "raise --compile-timeout (finished probes are cached, a rerun resumes), or use a smaller input size")


def describe_largest_layers(graph: Graph, count: int = 3) -> str:
    """The layers with the most MACs, with their PyTorch modules: what makes a compile slow."""
    ranked = sorted(((graph.macs_of(n), n) for n in graph.model.graph.node), key=lambda item: -item[0])
    parts = []
    for macs, node in ranked[:count]:
        if macs <= 0:
            break
        module = pytorch_module_of(node.name) if node.name else None
        shape = graph.describe_dims(node.output[0])
        parts.append(f"{node.op_type} {module or node.name or node.output[0]} -> {shape}, {macs / 1e9:.3g} GMAC")
    return "; ".join(parts) or "no MAC layers known"


def largest_layers(device_onnx: Path, count: int = 3) -> str:
    """``describe_largest_layers`` of a device graph file (shape inference, no compiler)."""
    model = onnx.load(str(device_onnx))
    try:
        model = shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as exc:
        log.debug("shape inference failed: %s", exc)
    return describe_largest_layers(Graph(model), count)


def _verdict_of(result: dict) -> dict:
    verdict = {"ok": bool(result.get("ok"))}
    if not verdict["ok"]:
        verdict["message"] = clean_compiler_message(result.get("message", "")) or "no message"
        if result.get("crashed"):
            verdict["crashed"] = True
    return verdict
