"""How far one stage's output is from the reference's: the numbers of the verify table."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


def is_image(shape: tuple[int, ...]) -> bool:
    """(1, 1|3, H, W) with a real picture size: compared by PSNR; anything else by cosine."""
    return len(shape) == 4 and shape[0] == 1 and shape[1] in (1, 3) and min(shape[2:]) >= 8


@dataclass(frozen=True)
class Comparison:
    max_abs: float
    mean_abs: float
    relative_max: float  # max_abs / the reference's range
    psnr_db: float | None  # images: peak = the reference's range
    cosine: float | None  # other outputs
    nan: int
    inf: int

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def compare(reference: np.ndarray, candidate: np.ndarray) -> Comparison:
    ref = np.asarray(reference, np.float64)
    got = np.asarray(candidate, np.float64).reshape(ref.shape)
    finite = np.isfinite(got)
    diff = np.abs(np.where(finite, got, 0.0) - ref)
    diff[~finite] = np.inf
    value_range = float(ref.max() - ref.min()) or float(np.abs(ref).max()) or 1.0
    max_abs = float(diff.max())
    mean_abs = float(diff.mean())
    psnr = cosine = None
    if is_image(ref.shape):
        mse = float(np.mean(diff**2))
        if mse == 0:
            psnr = float("inf")
        elif not math.isfinite(mse):  # NaN/Inf in the candidate: as bad as it gets
            psnr = float("-inf")
        else:
            psnr = 10 * math.log10(value_range**2 / mse)
    else:
        denom = float(np.linalg.norm(ref) * np.linalg.norm(got))
        cosine = 1.0 if denom == 0 else float(np.sum(ref * np.where(finite, got, 0.0)) / denom)
    return Comparison(max_abs, mean_abs, max_abs / value_range, psnr, cosine,
                      int(np.isnan(got).sum()), int(np.isinf(got).sum()))
