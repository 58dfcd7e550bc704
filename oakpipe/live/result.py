"""What a backend hands the shared pipeline per frame, and what a run reports at the end."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: ``receive``: capture (or host send) to host receipt, from depthai's timestamps (device only).
#: ``decode``: outputs to results (a task model's parser, NMS, masks, ``--results``; or the
#: generic view's picture); ``draw``: the results painted on the frame (task models only).
BACKEND_STAGES = ("capture", "preprocessing", "inference", "receive")
STAGES = (*BACKEND_STAGES, "decode", "draw", "display")
#: Frames the shown rate averages over (about a second at camera rates): steady, yet current.
FPS_WINDOW = 30


def rolling_fps(times: list[float], now: float | None = None) -> float:
    """Frames per second over the last ``FPS_WINDOW`` frame times (the overlay's and the web
    page's rate). ``now``, when given, is recorded first; ``times`` keeps only the window."""
    if now is not None:
        times.append(now)
        del times[:-FPS_WINDOW]
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0


@dataclass
class Inferred:
    """One frame through the network, in frame order.

    ``frame`` is exactly what the network saw (BGR U8, H x W x 3, the camera's preview);
    ``timing`` holds milliseconds for the stages this backend can see (NaN on a device,
    where capture and inference happen on the camera); ``started`` is the perf_counter
    time the frame came out of the source (on a device: its capture timestamp), from
    which the latency to the end of display is measured.
    """

    index: int
    frame: np.ndarray
    outputs: dict[str, np.ndarray]
    timing: dict[str, float]
    started: float


@dataclass(frozen=True)
class RunSummary:
    """Frames, rates and the per-frame timing split of one run (read by benchmarks)."""

    backend: str
    source: str
    frames: int
    seconds: float
    stopped_by: str
    #: per stage, milliseconds for each frame (same length as ``latency_ms``)
    stage_ms: dict[str, list[float]] = field(default_factory=dict)
    latency_ms: list[float] = field(default_factory=list)
    shows: str = ""
    #: the signal that stopped the run (SIGINT for Ctrl-C, SIGTERM, SIGHUP), None if it ended by itself
    signum: int | None = None

    @property
    def mean_fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def mean_latency_ms(self) -> float:
        return float(np.mean(self.latency_ms)) if self.latency_ms else math.nan

    def stage_mean_ms(self) -> dict[str, float]:
        return {s: _nanmean(self.stage_ms.get(s, [])) for s in STAGES}

    def stage_median_ms(self) -> dict[str, float]:
        return {s: _nanmedian(self.stage_ms.get(s, [])) for s in STAGES}

    def decode_draw_ratios(self) -> np.ndarray:
        """Per frame, (decode + draw) / inference; empty where inference is not timed (an OAK)."""
        inference = np.asarray(self.stage_ms.get("inference", []), dtype=np.float64)
        spent = sum((np.nan_to_num(np.asarray(self.stage_ms.get(s, []), dtype=np.float64)) for s in ("decode", "draw")),
                    np.zeros(len(inference)))
        ratios = spent / inference if len(spent) == len(inference) else np.zeros(0)
        return ratios[np.isfinite(ratios) & (inference > 0)]

    def one_line(self) -> str:
        split = ", ".join(f"{s} {v:.1f}" for s, v in self.stage_mean_ms().items() if not math.isnan(v))
        ratios = self.decode_draw_ratios()
        share = (f"; decode+draw {100 * np.median(ratios):.0f}% of inference (median per frame, "
                 f"p90 {100 * np.percentile(ratios, 90):.0f}%)" if len(ratios) else "")
        return (f"{self.frames} frames in {self.seconds:.2f} s, {self.mean_fps:.1f} FPS mean, "
                f"{self.mean_latency_ms:.1f} ms mean latency ({self.backend}, {self.source}, {self.stopped_by}); "
                f"ms per frame: {split}{share}")


def _nanmean(values: list[float]) -> float:
    a = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(a)) if a.size and not np.isnan(a).all() else math.nan


def _nanmedian(values: list[float]) -> float:
    a = np.asarray(values, dtype=np.float64)
    return float(np.nanmedian(a)) if a.size and not np.isnan(a).all() else math.nan
