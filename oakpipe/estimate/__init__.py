"""How fast a graph will run on an RVC2 camera, before there is a camera.

``layers`` reads the layers the MyriadX runs from an ONNX graph; ``rvc2`` costs them with a
model calibrated on Luxonis' published measurements (``calibrate`` refits it and measures
its error). No compiler, no device: shape inference only.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from oakpipe.estimate.layers import table_of
from oakpipe.estimate.rvc2 import CALIBRATED_THREADS, Rvc2Estimate, estimate


def estimate_model(model: onnx.ModelProto, *, shaves: int, threads: int = CALIBRATED_THREADS) -> Rvc2Estimate:
    return estimate(table_of(model), shaves=shaves, threads=threads)


def estimate_onnx(path: Path, *, shaves: int, threads: int = CALIBRATED_THREADS) -> Rvc2Estimate:
    return estimate_model(onnx.load(str(path)), shaves=shaves, threads=threads)


__all__ = ["Rvc2Estimate", "estimate_model", "estimate_onnx"]
