"""The RVC2 estimate against Luxonis' published measurements, row by row.

Each row's "held out" estimate comes from constants fitted without the row's whole family
(leave-one-family-out): the error to expect on a network the model was not fitted on. The
old rule (GMAC over 15-40 GMAC/s) is shown beside it. Reads only the stored table and layer
tables (benchmarks/rvc2), so it takes a second and needs no camera.
"""

from __future__ import annotations

import numpy as np

OLD_RULE_GMACS = (15.0, 40.0)  # the preflight's former estimate, for comparison only


def rvc2_vs_published() -> dict:
    from oakpipe.estimate import calibrate, rvc2

    rows = calibrate.load_rows()
    held_out = {r.key: fps for r, fps in calibrate.leave_one_family_out(rows)}
    out = []
    for row in rows:
        if row.table is None:
            out.append({"key": row.key, "model": row.model, "input": row.input, "published_fps": row.fps,
                        "built": False})
            continue
        gmac = sum(x.macs for x in row.table.layers) / 1e9
        estimate = rvc2.estimate(row.table).fps
        out.append({"key": row.key, "model": row.model, "input": row.input, "published_fps": row.fps, "built": True,
                    "gmac": gmac, "estimate_fps": estimate, "held_out_fps": held_out[row.key],
                    "held_out_error": held_out[row.key] / row.fps - 1.0,
                    "old_rule_fps": [g / gmac for g in OLD_RULE_GMACS]})
    errors = [abs(float(r["held_out_error"])) for r in out if r["built"]]  # type: ignore[arg-type]
    return {"rows": out, "held_out_median_abs_error": float(np.median(errors)),
            "held_out_max_abs_error": float(max(errors)), "shaves": rvc2.CALIBRATED_SHAVES,
            "threads": rvc2.CALIBRATED_THREADS}
