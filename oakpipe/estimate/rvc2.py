"""An RVC2 (MyriadX) latency model: each layer's cost from what it computes and moves.

MACs alone do not predict the frame rate (ResNet-18 runs at about 170 GMAC/s, YOLOv8n at
about 60): dense convolutions run on the MyriadX's convolution hardware, everything else
(depthwise convolutions, element-wise layers, concatenations, resizes, pooling) on the
SHAVEs, limited by the bytes they move, and slower when a layer's tensors do not fit the
2.5 MiB CMX and go through DDR. Each inference also pays a fixed cost and the USB3 transfer
of its input frame and FP16 outputs. So the time per frame is

    period = fixed + usb * MB over USB
           + sum over layers of: dense * GMAC(dense conv) + dw * GMAC(depthwise conv)
                                 + cmx * MB moved (CMX) + ddr * MB moved (DDR)
                                 + math * MB through transcendental layers (Swish, Sigmoid) + per_layer

a sum linear in eight constants, fitted (``oakpipe.estimate.calibrate``) in log space on
Luxonis' published measurements (8 SHAVEs, 2 inference threads; ``benchmarks/rvc2``).

No model in the table is small enough to show the ceiling every inference has, so a floor
is set from the link instead (an assumption, not a fit): a frame cannot take less than
``FLOOR_FIXED_MS`` plus its input and output bytes at ``USB3_MB_PER_S``; without it a
one-layer model would be promised thousands of frames per second.

Other SHAVE counts are an extrapolation, not a measurement: the SHAVE-bound terms
(depthwise, memory-bound and per-layer costs) scale with 8 / shaves, the convolution
hardware's do not. Latency is taken as threads x period (that many inferences in flight
share the chip); the published table calibrates only the frame rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oakpipe.estimate.layers import Layer, LayerTable

CMX_BYTES = int(2.5 * 1024 * 1024)
CALIBRATED_SHAVES = 8
CALIBRATED_THREADS = 2
USABLE_SHAVES = 13  # of 16, what NN and image processing share on an RVC2 with a camera running
MB = 1e6
USB3_MB_PER_S = 350.0  # what XLink moves over USB3 in practice (5 Gbit/s line rate, less protocol)
FLOOR_FIXED_MS = 1.0  # a request's round trip through XLink and the NN scheduler
GIGA = 1e9
TERMS = ("dense_ms_per_gmac", "depthwise_ms_per_gmac", "cmx_ms_per_mb", "ddr_ms_per_mb", "math_ms_per_mb",
         "ms_per_layer", "fixed_ms", "usb_ms_per_mb")
PER_LAYER = len(TERMS) - 2  # the last two are per inference
SHAVE_TERMS = {"depthwise_ms_per_gmac", "cmx_ms_per_mb", "ddr_ms_per_mb", "math_ms_per_mb", "ms_per_layer"}
# Fitted by `python -m oakpipe.estimate.calibrate` on every buildable row of the published table
# (tests/estimate checks that they are what that fit gives).
CONSTANTS = {"dense_ms_per_gmac": 2.83488, "depthwise_ms_per_gmac": 7.90544, "cmx_ms_per_mb": 0.115987,
             "ddr_ms_per_mb": 0.375667, "math_ms_per_mb": 0.439154, "ms_per_layer": 0.0219435, "fixed_ms": 1.63926,
             "usb_ms_per_mb": 0.0}
# Measured leave-one-family-out (README, `oakpipe bench`): every held-out row was within a
# factor 1.56 of its published FPS; estimates are given with that band, rounded up.
KNOWN_ERROR = 0.6
UNKNOWN_ERROR = 2.0  # a layer the model does not know: the estimate is far looser


@dataclass(frozen=True)
class LayerCost:
    name: str
    op: str
    kind: str
    ms: float
    memory: str  # "CMX" | "DDR"


@dataclass(frozen=True)
class Rvc2Estimate:
    fps: float
    fps_range: tuple[float, float]
    latency_ms: float
    period_ms: float
    shaves: int
    threads: int
    layers: tuple[LayerCost, ...]
    unknown_ops: tuple[str, ...]
    basis: str
    link_bound: bool = False  # the USB link's floor, not the layers, sets the frame rate

    @property
    def exact(self) -> bool:
        return not self.unknown_ops

    def costliest(self, n: int = 10) -> list[LayerCost]:
        return sorted(self.layers, key=lambda x: x.ms, reverse=True)[:n]

    def line(self) -> str:
        low, high = self.fps_range
        text = (f"RVC2 estimate: {self.fps:.1f} FPS ({low:.1f}-{high:.1f}), {self.latency_ms:.0f} ms latency at "
                f"{self.shaves} SHAVEs, {self.threads} threads")
        if self.link_bound:
            text += "; the USB link, not the network, sets this rate"
        if self.unknown_ops:
            text += f"; ops the model does not know ({', '.join(self.unknown_ops)}) make it a wide guess"
        return text

    def to_dict(self) -> dict:
        return {"rvc2_fps": round(self.fps, 2), "rvc2_fps_range": [round(x, 2) for x in self.fps_range],
                "rvc2_latency_ms": round(self.latency_ms, 2), "shaves": self.shaves, "threads": self.threads,
                "unknown_ops": list(self.unknown_ops), "basis": self.basis}


def layer_features(layer: Layer) -> np.ndarray:
    """The layer's quantities for the per-layer terms (TERMS order)."""
    moved = (layer.in_bytes + layer.out_bytes + layer.weight_bytes) / MB
    ddr = layer.in_bytes + layer.out_bytes > CMX_BYTES
    dense = layer.macs / GIGA if layer.kind in ("conv", "matmul") else 0.0
    depthwise = layer.macs / GIGA if layer.kind == "depthwise" else 0.0
    math = (layer.in_bytes + layer.out_bytes) / MB if layer.kind == "math" else 0.0
    return np.array([dense, depthwise, 0.0 if ddr else moved, moved if ddr else 0.0, math, 1.0])


def table_features(table: LayerTable) -> np.ndarray:
    """The whole graph's quantities for all the terms: what the calibration fits."""
    per_layer = sum((layer_features(x) for x in table.layers), np.zeros(PER_LAYER))
    return np.concatenate([per_layer, [1.0, (table.input_bytes + table.output_bytes) / MB]])


def _scaled(constants: dict[str, float], shaves: int) -> np.ndarray:
    factor = CALIBRATED_SHAVES / shaves
    return np.array([constants[t] * (factor if t in SHAVE_TERMS else 1.0) for t in TERMS])


def estimate(table: LayerTable, *, shaves: int = CALIBRATED_SHAVES, threads: int = CALIBRATED_THREADS,
             constants: dict[str, float] | None = None) -> Rvc2Estimate:
    """Frame rate, latency and per-layer cost of a graph on an RVC2."""
    if not 1 <= shaves <= 16 or threads < 1:
        raise ValueError(f"shaves must be 1-16 and threads at least 1 (got {shaves}, {threads})")
    c = _scaled(constants or CONSTANTS, shaves)
    costs = []
    for layer in table.layers:
        ms = float(layer_features(layer) @ c[:PER_LAYER])
        memory = "DDR" if layer.in_bytes + layer.out_bytes > CMX_BYTES else "CMX"
        costs.append(LayerCost(layer.name, layer.op, layer.kind, ms, memory))
    io_mb = (table.input_bytes + table.output_bytes) / MB
    layers_ms = sum(x.ms for x in costs) + c[PER_LAYER] + c[PER_LAYER + 1] * io_mb
    period = float(max(layers_ms, io_floor_ms(table)))
    fps = 1000.0 / period
    unknown = tuple(sorted({x.op for x in table.layers if x.kind == "unknown"}))
    error = UNKNOWN_ERROR if unknown else KNOWN_ERROR
    basis = (f"per-layer RVC2 model fitted to Luxonis' published FPS (8 SHAVEs, 2 threads); models of a family "
             f"it was not fitted on came within x/{1 + KNOWN_ERROR:g}")
    if unknown:
        basis += f"; unknown ops {', '.join(unknown)} costed as memory-bound layers, range widened to x/{1 + error:g}"
    if shaves != CALIBRATED_SHAVES:
        basis += f"; {shaves} SHAVEs extrapolated from 8"
    return Rvc2Estimate(fps, (fps / (1 + error), fps * (1 + error)), period * threads, period, shaves, threads,
                        tuple(costs), unknown, basis, bool(layers_ms < period))


def io_floor_ms(table: LayerTable) -> float:
    """The least time a frame can take: the link, whatever the network."""
    return FLOOR_FIXED_MS + (table.input_bytes + table.output_bytes) / MB / USB3_MB_PER_S * 1000.0


def recommended_shaves(threads: int = CALIBRATED_THREADS) -> int:
    """SHAVEs per inference thread that leave the camera's image processing its share."""
    return max(1, min(16, USABLE_SHAVES // max(1, threads)))
