"""The verify report: a table for the terminal, verify.json, verify.md and a range chart."""

from __future__ import annotations

import json
import math
from pathlib import Path

from oakpipe.manifest import write_atomic
from oakpipe.verify import ranges as fp16_ranges
from oakpipe.verify.core import STAGE_TITLES, VerifyReport
from oakpipe.verify.task_check import conf_line


def _number(value: float | None, fmt: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return format(value, fmt)


def table_lines(report: VerifyReport) -> list[str]:
    header = (f"{'stage':<40} {'output':<10} {'max abs':>9} {'mean abs':>9} {'PSNR dB':>8} "
              f"{'cosine':>8} {'NaN/Inf':>7} {'tolerance':>12}  result")
    lines = [f"verify {report.model}: reference {report.reference}; inputs {', '.join(report.inputs)}", header]
    for stage in report.stages:
        c = stage.comparison
        verdict = stage.note if c is None else ("pass" if stage.passed else "FAIL")
        if c is not None and stage.note:
            verdict += f" ({stage.note})"
        lines.append(
            f"{STAGE_TITLES[stage.stage]:<40} {stage.output[:10]:<10} "
            f"{_number(c.max_abs if c else None, '9.2e'):>9} {_number(c.mean_abs if c else None, '9.2e'):>9} "
            f"{_number(c.psnr_db if c else None, '8.1f'):>8} {_number(c.cosine if c else None, '8.5f'):>8} "
            f"{(str(c.nan + c.inf) if c else '-'):>7} {stage.tolerance:>12}  {verdict}"
        )
    if report.task_checks:
        first = report.task_checks[0]
        lines.append(f"decoded on the photo as run shows it{conf_line(first.conf, first.head_conf)}:")
        lines += [f"{STAGE_TITLES[t.stage]:<40} {t.what:<15} {'pass' if t.passed else 'FAIL'}  {t.summary}"
                  for t in report.task_checks]
    elif report.task_note:
        lines.append(report.task_note)
    over, under = report.fp16_overflows, report.fp16_underflows
    lines.append(f"FP16 range: {len(report.ranges)} tensors checked, {len(over)} overflow, "
                 f"{len(under)} underflow")
    lines += [f"  ! {fp16_ranges.describe(r)}" for r in over]
    lines += [f"  warning: {fp16_ranges.describe(r)}" for r in under[:5]]
    if len(under) > 5:
        lines.append(f"  warning: and {len(under) - 5} more tensors below FP16's normal range (verify.json)")
    if over or (under and report.first_failure == "fp16"):
        lines.append(f"  remedies: {fp16_ranges.REMEDIES}")
    if report.first_failure:
        lines.append(f"first failing stage: {STAGE_TITLES[report.first_failure]}; first layer: {report.blame}")
    elif report.blame:  # no failing stage, FP16 flags only: e.g. the untrained-BatchNorm note
        lines.append(f"note: {report.blame}")
    lines.append("verify: PASSED" if report.passed else "verify: FAILED")
    return lines


def preflight_lines(preflight: dict) -> list[str]:
    """The preflight's findings as recorded in the manifest (a plain dict)."""
    e = preflight["estimates"]
    lines = [f"verdict: {'passes' if preflight['ok'] else 'FAILS'}; {e['gmac']:.3g} GMAC, "
             f"{e['params']:,} parameters"]
    lines += [f"problem: {p['op_type']} at {p['node']}: {p['message']}" for p in preflight["problems"]]
    lines += [f"warning: {w}" for w in preflight["warnings"]]
    lines += [f"memory: {e['cmx_verdict']}; {e['ddr_verdict']}"]
    if e.get("rvc2"):  # the same line the preflight prints (oakpipe.estimate)
        lines.append(f"speed: {e['rvc2']['line']} ({e['fps_basis']})")
    return lines


def write_reports(report: VerifyReport, paths: dict[str, Path]) -> None:
    """Write the three report files to the given (temporary) paths."""
    write_atomic(paths["verify.json"], (json.dumps(report.to_dict(), indent=1) + "\n").encode())
    markdown = ["# oakpipe verify: " + report.model, "", "```", *table_lines(report), "```", "",
                "![activation ranges](verify_ranges.png)", ""]
    if report.preflight:
        markdown += ["## MyriadX preflight", "", "```", *preflight_lines(report.preflight), "```", ""]
    write_atomic(paths["verify.md"], "\n".join(markdown).encode())
    fp16_ranges.draw_chart(report.ranges, paths["verify_ranges.png"])
