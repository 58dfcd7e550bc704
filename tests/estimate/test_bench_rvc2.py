"""`oakpipe bench`'s "RVC2 estimate vs published" table."""

from __future__ import annotations

import json

from oakpipe.bench.rvc2 import rvc2_vs_published
from oakpipe.bench.tables import rvc2_section
from oakpipe.estimate import calibrate


def test_every_published_row_is_in_the_table_with_its_held_out_error():
    data = json.loads(json.dumps(rvc2_vs_published()))  # as stored in the results JSON
    rows = calibrate.load_rows()
    assert [r["key"] for r in data["rows"]] == [r.key for r in rows]
    lines = rvc2_section({"rvc2": data})
    assert lines[0] == "## RVC2 estimate vs published"
    table = [line for line in lines if line.startswith("| ") and "---" not in line][1:]
    assert len(table) == len(rows)
    for row, line in zip(data["rows"], table):
        if row["built"]:
            assert f"{100 * row['held_out_error']:+.0f}%" in line
        else:
            assert "(no graph)" in line


def test_results_written_before_the_estimate_have_no_rvc2_section():
    assert rvc2_section({"date": "2026-01-01T00:00:00"}) == []
