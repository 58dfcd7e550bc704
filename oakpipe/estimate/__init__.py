"""How fast a graph will run on an RVC2 camera, before there is a camera.

``layers`` reads the layers the MyriadX runs from an ONNX graph; ``rvc2`` costs them with a
model calibrated on Luxonis' published measurements (``calibrate`` refits it and measures
its error). No compiler, no device: shape inference only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: a cached convert imports this package, never onnx
    import onnx

    from oakpipe.estimate.rvc2 import Rvc2Estimate


def estimate_model(model: onnx.ModelProto, *, shaves: int, threads: int | None = None) -> Rvc2Estimate:
    """``threads`` None: the count the model was calibrated with (rvc2.CALIBRATED_THREADS)."""
    from oakpipe.estimate.layers import table_of
    from oakpipe.estimate.rvc2 import CALIBRATED_THREADS, estimate

    return estimate(table_of(model), shaves=shaves, threads=CALIBRATED_THREADS if threads is None else threads)


def estimate_onnx(path: Path, *, shaves: int, threads: int | None = None) -> Rvc2Estimate:
    import onnx

    return estimate_model(onnx.load(str(path)), shaves=shaves, threads=threads)


__all__ = ["estimate_model", "estimate_onnx"]
