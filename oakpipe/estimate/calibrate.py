"""Fit the RVC2 model's constants to Luxonis' published table, and measure how well it predicts.

``python -m oakpipe.estimate.calibrate`` prints the fitted constants (to copy into
``rvc2.CONSTANTS``) and the leave-one-family-out table: for each model family (ResNet,
MobileOne, DeepLab, each YOLO generation), the constants are fitted on the other families
alone and the family's rows are predicted. That is the error to expect on a network the
model has not seen. The fit minimises the squared log error (a ratio, so a 5 FPS and a 150
FPS model count alike) with every constant non-negative, by Gauss-Newton steps each solved
as a non-negative least-squares problem, with numpy alone.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oakpipe.estimate import rvc2
from oakpipe.estimate.layers import LayerTable, load_table

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "rvc2"


@dataclass(frozen=True)
class Row:
    key: str
    family: str
    model: str
    input: int
    fps: float
    table: LayerTable | None  # None: no graph could be built for it


def load_rows(data: Path = DATA) -> list[Row]:
    published = json.loads((data / "published.json").read_text())
    rows = []
    for row in published["rows"]:
        path = data / "graphs" / f"{row['key']}.json"
        rows.append(Row(row["key"], row["family"], row["model"], row["input"], row["fps"],
                        load_table(path) if path.exists() else None))
    return rows


def _nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """min |a x - b| with x >= 0, exactly, by trying every set of free columns (8 terms: 255 sets)."""
    best, best_res = np.zeros(a.shape[1]), float(b @ b)
    for size in range(1, a.shape[1] + 1):
        for cols in itertools.combinations(range(a.shape[1]), size):
            x, *_ = np.linalg.lstsq(a[:, cols], b, rcond=None)
            if (x < 0).any():
                continue
            res = float(np.sum((a[:, cols] @ x - b) ** 2))
            if res < best_res:
                best, best_res = np.zeros(a.shape[1]), res
                best[list(cols)] = x
    return best


def fit(rows: list[Row], iterations: int = 40) -> dict[str, float]:
    """Constants minimising sum(log(predicted / published FPS)^2) over ``rows``."""
    features = np.array([rvc2.table_features(_built(r)) for r in rows])
    period = np.array([1000.0 / r.fps for r in rows])
    scale = features.max(axis=0)
    scale[scale == 0] = 1.0
    f = features / scale  # columns of comparable size
    c = _nnls(f / period[:, None], np.ones(len(rows)))  # relative error first
    for _ in range(iterations):
        predicted = np.maximum(f @ c, 1e-9)
        step = _nnls(f / predicted[:, None], np.log(period / predicted) + 1.0)
        if np.allclose(step, c, rtol=1e-9, atol=1e-12):
            break
        c = step
    return dict(zip(rvc2.TERMS, (c / scale).tolist()))


def predict(row: Row, constants: dict[str, float]) -> float:
    return rvc2.estimate(_built(row), constants=constants).fps


def _built(row: Row) -> LayerTable:
    """The row's layer table; rows without one are left out before fitting or predicting."""
    assert row.table is not None, f"{row.key} has no layer table"
    return row.table


def leave_one_family_out(rows: list[Row]) -> list[tuple[Row, float]]:
    """(row, predicted FPS) with each family predicted by a fit to the other families."""
    usable = [r for r in rows if r.table is not None]
    out = []
    for family in dict.fromkeys(r.family for r in usable):
        constants = fit([r for r in usable if r.family != family])
        out += [(r, predict(r, constants)) for r in usable if r.family == family]
    return out


def relative_error(predicted: float, published: float) -> float:
    return predicted / published - 1.0


def main() -> None:
    rows = load_rows()
    usable = [r for r in rows if r.table is not None]
    constants = fit(usable)
    print("CONSTANTS =", json.dumps({k: float(f"{v:.6g}") for k, v in constants.items()}))
    errors = []
    print(f"{'row':<18} {'published':>9} {'fit all':>8} {'LOFO':>8} {'error':>7}")
    for row, lofo in leave_one_family_out(rows):
        error = relative_error(lofo, row.fps)
        errors.append(abs(error))
        print(f"{row.key:<18} {row.fps:9.2f} {predict(row, constants):8.2f} {lofo:8.2f} {error:+7.0%}")
    for row in rows:
        if row.table is None:
            print(f"{row.key:<18} {row.fps:9.2f}   (no graph: not built)")
    print(f"leave-one-family-out: median |error| {np.median(errors):.0%}, max {max(errors):.0%}")


if __name__ == "__main__":
    main()
