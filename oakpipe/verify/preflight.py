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

Modules: ``probes`` builds the probe graphs, ``probe_cache`` keeps their verdicts,
``estimates`` does the arithmetic; this one runs them and writes the report.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import onnx
from onnx import shape_inference

from oakpipe.blame import pytorch_module_of
from oakpipe.errors import UnsupportedModelError, UserError
from oakpipe.verify import probe_cache
from oakpipe.verify.estimates import (  # noqa: F401  (re-exported: the preflight's public names)
    TARGET_FPS,
    Estimates,
    _mib,
    describe_largest_layers,
    estimate,
    estimate_warnings,
    estimates_of,
    largest_layers,
)
from oakpipe.verify.probes import Graph, ProbePlan, Problem, adapted_inputs, adapter_shape, unprobe_names  # noqa: F401


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
        return (f"MyriadX preflight passes: {s.probes} op probes ({s.cached} cached), {e.gmac:.3g} GMAC, "
                f"largest activation {_mib(e.largest_activation_bytes)}")

    def lines(self) -> list[str]:
        e, s = self.estimates, self.stats
        verdict = "passes" if self.ok else f"FAILS ({len(self.problems)} problem{'s' * (len(self.problems) != 1)})"
        lines = [f"MyriadX preflight of {self.model}: {verdict}"]
        lines += [f"  problem: {p.line()}" for p in self.problems]
        lines += [f"  warning: {w}" for w in self.warnings]
        lines += [f"  inconclusive: {i}" for i in self.inconclusive]
        lines.append(f"  compute: {e.gmac:.3g} GMAC, {e.params:,} parameters ({_mib(e.fp16_weight_bytes)} in FP16)")
        lines.append(f"  memory: {e.cmx_verdict}; {e.ddr_verdict}")
        if e.rvc2:
            lines.append(f"  speed: {e.rvc2['line']} ({e.fps_basis})")
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
            message = unprobe_names(verdict["message"], node, inputs=digest not in plan.fused)
            if not faithful:
                inconclusive.append(f"{node.op_type} ({name}{f', PyTorch module {module}' if module else ''}): "
                                    f"its input {adapted_inputs(node, graph)} cannot be fed to a "
                                    f"probe as the whole graph feeds it; left to the whole-model compile "
                                    f"(the probe said: {message[:200]})")
                continue
            kind = "compiler_crash" if verdict.get("crashed") else "unsupported_op"
            how = f" {plan.fused[digest]}" if digest in plan.fused else ""
            problems.append(Problem(kind, f"the MYRIAD compiler rejects it{how}: {message}", node.op_type, name,
                                    module))
    estimates = estimates_of(graph, shaves)
    if not estimates.fits_ddr:
        problems.append(Problem("memory", estimates.ddr_verdict))
    warnings = estimate_warnings(estimates)
    stats = ProbeStats(len(inferred.graph.node), plan.folded, plan.not_probed, len(plan.probes), cached, compiled,
                       round(time.perf_counter() - started, 3))
    return PreflightReport(str(device_onnx), tuple(problems), tuple(warnings), tuple(inconclusive), estimates, stats)


# --- compiling probes -----------------------------------------------------------------------

def _verdicts(plan: ProbePlan, graphs: dict[str, bytes], shaves: int, use_cache: bool, timeout: float | None,
              graph: Graph) -> tuple[dict, int, int]:
    digests = list(graphs)
    cache = probe_cache.load_cache() if use_cache else {}
    verdicts = {d: cache[probe_cache.cache_key(d, shaves)] for d in digests if probe_cache.cache_key(d, shaves) in cache}
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
                finished = dict(zip(missing, (probe_cache.verdict_of(r) for r in exc.done)))
                probe_cache.save_cache({probe_cache.cache_key(d, shaves): v for d, v in finished.items()})  # a rerun resumes here
                stuck = plan.probes.get(missing[len(finished)], [None])[0] if len(finished) < len(missing) else None
                raise probe_timeout(budget, len(finished), len(missing), stuck, graph) from None
            for digest, result in zip(missing, results):
                verdicts[digest] = probe_cache.verdict_of(result)
        probe_cache.save_cache({probe_cache.cache_key(d, shaves): verdicts[d] for d in missing})
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
