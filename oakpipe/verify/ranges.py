"""FP16 range check: every tensor the model computes, against what float16 can hold.

Ranges come from the model's ONNX graph run in FP32 on the sample inputs, so functional
ops inside a forward (``x * 1000``) are seen too, not only modules; each tensor is named
by its ONNX node and the PyTorch module the node came from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from oakpipe.stages.blob import pytorch_module_of
from oakpipe.verify.runners import node_of_tensor, onnx_intermediates_of

FP16_MAX = 65504.0
FP16_MIN_NORMAL = 6.104e-05  # below this float16 keeps fewer than 11 significant bits

REMEDIES = (
    "keep inputs in [0, 1]; compute statistics as means, not sums; centre before squaring; "
    "scale the layer's weights down and the next layer's up; or fold fixed statistics into constants"
)


@dataclass(frozen=True)
class TensorRange:
    tensor: str
    node: str
    module: str | None
    max_abs: float
    verdict: str  # "ok" | "overflow" | "underflow"

    def to_dict(self) -> dict:
        return asdict(self)


def activation_ranges(model_onnx: Path, feeds: list[np.ndarray]) -> list[TensorRange]:
    nodes = node_of_tensor(model_onnx)
    peaks: dict[str, float] = {}
    for values in onnx_intermediates_of(model_onnx, feeds):
        for name, value in values.items():
            finite = np.abs(value[np.isfinite(value)]) if value.size else np.zeros(1)
            peak = float(finite.max()) if finite.size else float("inf")
            peaks[name] = max(peaks.get(name, 0.0), peak)
    ranges = []
    for name, peak in peaks.items():
        node = nodes.get(name, "")
        ranges.append(TensorRange(name, node, pytorch_module_of(node), peak, verdict_of(peak)))
    return ranges


def verdict_of(peak: float) -> str:
    if peak > FP16_MAX:
        return "overflow"
    if 0 < peak < FP16_MIN_NORMAL:
        return "underflow"
    return "ok"


def flagged(ranges: list[TensorRange]) -> list[TensorRange]:
    return [r for r in ranges if r.verdict != "ok"]


def describe(rng: TensorRange) -> str:
    where = f"PyTorch module {rng.module}" if rng.module else f"ONNX node {rng.node or rng.tensor}"
    if rng.verdict == "overflow":
        return f"{where} reaches |x| = {rng.max_abs:.4g} > {FP16_MAX:g} (FP16 overflow: inf on the device)"
    return (f"{where} stays below |x| = {rng.max_abs:.3g}, under FP16's smallest normal number "
            f"{FP16_MIN_NORMAL:.3g}: the device keeps fewer significant bits there (underflow)")


def draw_chart(ranges: list[TensorRange], path: Path, limit: int = 400) -> None:
    """Bars of log10 |x| per tensor (graph order) with the FP16 limit as a red line."""
    import cv2

    shown = ranges[:limit]
    width, height, margin = 900, 360, 40
    canvas = np.full((height, width, 3), 255, np.uint8)
    low, high = -6.0, 7.0  # log10 range of the axis

    def y_of(value: float) -> int:
        level = np.clip(np.log10(max(value, 10**low)), low, high)
        return int(height - margin - (level - low) / (high - low) * (height - 2 * margin))

    bar = (width - 2 * margin) / max(1, len(shown))
    colours = {"ok": (160, 120, 40), "overflow": (40, 40, 220), "underflow": (40, 160, 220)}
    for index, rng in enumerate(shown):
        x0, x1 = int(margin + index * bar), int(margin + (index + 1) * bar) - 1
        cv2.rectangle(canvas, (x0, y_of(rng.max_abs)), (max(x0, x1), height - margin), colours[rng.verdict], -1)
    limit_y = y_of(FP16_MAX)
    cv2.line(canvas, (margin, limit_y), (width - margin, limit_y), (0, 0, 255), 2)
    cv2.putText(canvas, "FP16 max 65504", (width - 220, limit_y - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 255), 1)
    cv2.putText(canvas, "max |activation| per layer (log scale), graph order", (margin, 22),
                cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1)
    for level in range(int(low), int(high) + 1, 2):
        cv2.putText(canvas, f"1e{level}", (2, y_of(10.0**level) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (90, 90, 90), 1)
    ok, data = cv2.imencode(".png", canvas)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    path.write_bytes(data.tobytes())
