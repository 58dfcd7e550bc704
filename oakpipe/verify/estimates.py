"""RVC2 estimates from shapes alone (no compiler): MACs, FP16 weights, the largest and the
peak live activations against the chip's CMX and DDR, and a frame-rate range.

Also names a model's largest layers, which is what makes a MYRIAD compile slow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import shape_inference

from oakpipe.blame import pytorch_module_of
from oakpipe.verify.probes import Graph

log = logging.getLogger(__name__)

# --- the chip (Luxonis RVC2 documentation; /work/shared/notes/depthai.md) ----------------
CMX_BYTES = int(2.5 * 1024 * 1024)  # on-chip memory shared by the SHAVEs
DDR_USABLE_BYTES = 358 * 1024 * 1024  # of 512 MiB, what a pipeline can use
FP16_BYTES = 2
TARGET_FPS = 10.0
# The frame rate comes from oakpipe.estimate's per-layer RVC2 model (calibrated on Luxonis'
# published measurements); its basis and error band travel with each estimate.


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
    estimated_fps: tuple[float, float] | None  # (low, high): the RVC2 estimate's error band
    fps_basis: str
    rvc2: dict | None = None  # oakpipe.estimate's Rvc2Estimate.to_dict(), with its one-line summary
    mac_formula: str = (
        "Conv: N*Cout*Hout*Wout * (Cin/group)*kH*kW; ConvTranspose: N*Cin*Hin*Win * (Cout/group)*kH*kW; "
        "MatMul: prod(output shape) * K; Gemm: M*N*K"
    )


def inferred_graph(device_onnx: Path) -> Graph:
    """A device graph file with its shapes inferred (the declared ones when inference fails)."""
    model = onnx.load(str(device_onnx))
    try:
        model = shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as exc:
        log.debug("shape inference failed, using the declared shapes: %s", exc)
    return Graph(model)


def estimate(device_onnx: Path, shaves: int = 6) -> Estimates:
    """The estimates alone (MACs, weights, activations, FPS): shape inference, no compiler."""
    return estimates_of(inferred_graph(device_onnx), shaves)


def estimate_warnings(estimates: Estimates) -> list[str]:
    """Below 10 FPS is "likely" when the middle of the range (geometric mean) is below it."""
    warnings = []
    if estimates.estimated_fps:
        low, high = estimates.estimated_fps
        if (low * high) ** 0.5 < TARGET_FPS:
            warnings.append(f"likely below {TARGET_FPS:.0f} FPS on an RVC2: about {low:.1f}-{high:.1f} FPS "
                            f"for {estimates.gmac:.2f} GMAC ({estimates.fps_basis})")
        elif low < TARGET_FPS:
            warnings.append(f"may run below {TARGET_FPS:.0f} FPS on an RVC2 (about {low:.1f}-{high:.1f} FPS "
                            f"for {estimates.gmac:.2f} GMAC)")
    if not estimates.fits_cmx:
        warnings.append(estimates.cmx_verdict)
    return warnings


def _known(graph: Graph, name: str) -> list[int]:
    """A static shape; an unknown one raises TypeError (a node whose size cannot be counted)."""
    shape = graph.static_shape(name)
    if shape is None:
        raise TypeError(f"{name} has no static shape")
    return shape


def macs_of(graph: Graph, node) -> int:
    """Multiply-accumulates of one node from static shapes (0 when not a MAC op or unknown)."""
    op = node.op_type
    try:
        if op in ("Conv", "ConvTranspose"):
            w = _known(graph, node.input[1])
            # the weight's dim 1 is already per group (Cin/group, or Cout/group)
            kernel = int(np.prod(w[2:]))
            if op == "Conv":  # weight (Cout, Cin/group, k...): each output element
                return int(np.prod(_known(graph, node.output[0]))) * w[1] * kernel
            # ConvTranspose weight (Cin, Cout/group, k...): each input element scatters
            return int(np.prod(_known(graph, node.input[0]))) * w[1] * kernel
        if op == "MatMul":
            a, y = _known(graph, node.input[0]), _known(graph, node.output[0])
            return int(np.prod(y)) * a[-1]
        if op == "Gemm":
            a, y = _known(graph, node.input[0]), _known(graph, node.output[0])
            trans_a = next((x.i for x in node.attribute if x.name == "transA"), 0)
            return int(np.prod(y)) * (a[0] if trans_a else a[1])
    except (TypeError, IndexError):
        return 0
    return 0

def estimates_of(graph: Graph, shaves: int = 6) -> Estimates:
    """MACs, weights, activations against CMX and DDR, FPS: from the graph's static shapes."""
    g = graph.model.graph
    macs = sum(macs_of(graph, n) for n in g.node)
    float_kinds = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                   onnx.TensorProto.BFLOAT16)
    weights = [i for i in g.initializer if i.data_type in float_kinds]
    weights += [a.t for n in g.node if n.op_type == "Constant" for a in n.attribute
                if a.name == "value" and a.t.data_type in float_kinds]
    params = sum(int(np.prod(t.dims)) for t in weights)
    # Activations: every non-constant tensor with a static shape, stored as FP16.
    sizes: dict[str, int] = {}
    for name in graph.types:
        if name in graph.constants:
            continue
        shape = graph.static_shape(name)
        if shape is not None:
            sizes[name] = int(np.prod(shape)) * FP16_BYTES
    largest = max(sizes, key=lambda name: sizes[name], default=None)
    largest_bytes = sizes.get(largest, 0) if largest else 0
    peak = peak_live(graph, sizes)
    weight_bytes = params * FP16_BYTES
    fits_cmx = largest_bytes <= CMX_BYTES
    cmx = (f"largest activation {_mib(largest_bytes)} ({largest} {graph.describe_dims(largest)}) "
           + (f"fits the {_mib(CMX_BYTES)} CMX" if fits_cmx else
              f"exceeds the {_mib(CMX_BYTES)} CMX: those layers are tiled through DDR, which is slower")
           ) if largest else "no activation sizes known"
    ddr = weight_bytes + peak
    fits_ddr = ddr <= DDR_USABLE_BYTES
    ddr_text = (f"FP16 weights {_mib(weight_bytes)} + peak live activations {_mib(peak)} = {_mib(ddr)} "
                + ("of" if fits_ddr else "EXCEEDS") + f" the ~{_mib(DDR_USABLE_BYTES)} usable DDR")
    from oakpipe.estimate import estimate_model

    try:
        rvc2 = estimate_model(graph.model, shaves=shaves)
    except Exception as exc:  # an estimate must never stop a convert: say it could not be made
        fps, basis, record = None, f"no RVC2 estimate: {type(exc).__name__}: {exc}", None
    else:
        low, high = rvc2.fps_range
        fps = (round(low, 2), round(high, 2))
        basis, record = rvc2.basis, {**rvc2.to_dict(), "line": rvc2.line()}
    return Estimates(macs, round(macs / 1e9, 4), params, weight_bytes, largest_bytes, largest,
                     tuple(_known(graph, largest)) if largest else None, peak, fits_cmx, cmx, ddr,
                     fits_ddr, ddr_text, fps, basis, record)


def peak_live(graph: Graph, sizes: dict[str, int]) -> int:
    """Largest sum of tensors alive at once, in the graph's (topological) order."""
    g = graph.model.graph
    last_use: dict[str, int] = {}
    for index, node in enumerate(g.node):
        for name in node.input:
            last_use[name] = index
    outputs = {o.name for o in g.output}
    live = {i.name: sizes.get(i.name, 0) for i in g.input if i.name not in graph.initializer_names}
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


def describe_largest_layers(graph: Graph, count: int = 3) -> str:
    """The layers with the most MACs, with their PyTorch modules: what makes a compile slow."""
    ranked = sorted(((macs_of(graph, n), n) for n in graph.model.graph.node), key=lambda item: -item[0])
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
    return describe_largest_layers(inferred_graph(device_onnx), count)


def _mib(n: int) -> str:
    return f"{n / 1024 / 1024:.2f} MiB" if n >= 1024 * 1024 else f"{n / 1024:.1f} KiB"
