"""The benchmark's tables, as Markdown (the terminal shows the same text)."""

from __future__ import annotations

STAGE_COLUMNS = ("onnx", "device", "ir", "blob", "archive")


def _row(cells: list) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(header: list[str], rows: list[list]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows), ""]


def machine_section(results: dict) -> list[str]:
    m, peak = results["machine"], results["peak"]
    return [
        f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}; "
        f"torch {m['versions']['torch']}, onnxruntime {m['versions']['onnxruntime']}, "
        f"openvino {m['versions']['openvino']}.",
        f"FP32 peak: {peak['gflops']:.0f} GFLOP/s ({peak['method']}; median {peak['median']:.0f}, "
        f"slowest {peak['min']:.0f}).", "",
    ]


def conversion_section(results: dict) -> list[str]:
    rows = []
    for r in results["conversion"]:
        stages = [f"{r['stages_s'][s]:.2f}" for s in STAGE_COLUMNS]
        rows.append([r["model"], f"{r['cold_s']:.2f}", *stages, f"{r['cached_in_process_s']:.3f}",
                     f"{r['cached_cli_s']:.2f}", f"{r['blob_bytes'] / 1024:.0f} KiB"])
    lines = ["## Conversion at 256x256 (seconds)", ""]
    lines += _table(["model", "cold total", *STAGE_COLUMNS, "cached (API)", "cached (CLI)", "blob"], rows)
    lines += cached_cli_lines(results["conversion"])
    manual = results.get("manual_2021")
    stylizer = next((r for r in results["conversion"] if r["model"] == "stylizer"), None)
    if manual and stylizer:
        ours = stylizer["stages_s"]["blob"] + stylizer["stages_s"]["ir"]
        lines += [f"The 2021 way for the stylizer (Model Optimizer 2021.4 {manual['model_optimizer_s']:.1f} s, then "
                  f"the compile as its own process {manual['compile_s']:.1f} s): {manual['total_s']:.1f} s; oakpipe's "
                  f"IR + blob stages: {ours:.1f} s ({manual['total_s'] / ours:.1f}x faster); whole cold convert "
                  f"{stylizer['cold_s']:.1f} s.", ""]
    else:
        lines += ["The 2021 manual chain was not measured: install its Model Optimizer with "
                  "`oakpipe toolchain install --with-model-optimizer`.", ""]
    return lines


def cached_cli_lines(conversion: list[dict]) -> list[str]:
    """A cached `oakpipe convert` beside the floor of any CLI call, measured in the same run."""
    lines = []
    for r in conversion:
        if "python_pass_s" not in r:  # result files written before this was measured
            continue
        lines.append(f"Cached `oakpipe convert {r['model']}` from the shell: {r['cached_cli_s']:.2f} s = "
                     f"{r['cached_cli_over_python']:.1f}x `python -c pass` ({r['python_pass_s']:.3f} s), "
                     f"{r['cached_cli_over_help']:.2f}x `oakpipe --help` ({r['help_s']:.2f} s).")
    return lines + [""] if lines else []


def large_models_section(results: dict) -> list[str]:
    """Cold converts of large models, verify included, per stage."""
    data = results.get("large_models")
    if not data:
        return []
    columns = (*STAGE_COLUMNS, "verify")
    rows, notes = [], []
    for r in data:
        shape = "x".join(map(str, r["input"][2:]))
        if r.get("skipped"):
            notes.append(f"{r['model']} at {shape}: not measured: {r['skipped']}.")
            continue
        rows.append([r["model"], shape, f"{r['cold_s']:.1f}", *(f"{r['stages_s'].get(s, 0.0):.2f}" for s in columns),
                     f"{100 * r['archive_share']:.0f}%", f"{r['archive_bytes'] / 2**20:.1f} MiB",
                     {True: "passed", False: "failed"}.get(r.get("verified"), "-")])
    lines = ["## Cold convert of large models (seconds, verify included)", ""]
    lines += _table(["model", "input", "total", *columns, "archive share", "archive", "verified"], rows)
    return lines + notes + ([""] if notes else [])


def inference_section(results: dict) -> list[str]:
    inf, peak = results["inference"], results["peak"]["gflops"]
    rows = []
    for name, r in inf["runtimes"].items():
        gflops = inf["gmac"] * 2 * r["fps"]
        rows.append([name, f"{r['fps']:.1f}", f"{r['min']:.1f}-{r['max']:.1f}", f"{gflops:.1f}",
                     f"{100 * gflops / peak:.0f}%"])
    lines = [f"## Host inference: {inf['model']} at {inf['size']}x{inf['size']} ({inf['gmac']:.2f} GMAC)", ""]
    lines += _table(["runtime", "FPS (median)", "spread", "GFLOP/s", "of FP32 peak"], rows)
    stage_ms = inf["runtimes"]["pipeline"].get("stage_ms", {})
    split = ", ".join(f"{k} {v:.1f}" for k, v in stage_ms.items() if v == v)
    lines += [f"Pipeline / raw OpenVINO: {100 * inf['pipeline_over_openvino']:.0f}% "
              f"(pipeline ms per frame, medians: {split}).", ""]
    return lines


def pipeline_section(results: dict) -> list[str]:
    pipe = results.get("pipeline")
    if not pipe:
        return []
    halve = pipe["halve"]
    split = ", ".join(f"{k} {v:.2f}" for k, v in halve["stage_ms"].items() if v == v)
    return [
        f"## Host pipeline on a {pipe['gmac']:.2f} GMAC CNN", "",
        f"Raw OpenVINO {pipe['openvino']['fps']:.1f} FPS, `oakpipe run` {pipe['pipeline']['fps']:.1f} FPS: "
        f"{100 * pipe['pipeline_over_openvino']:.0f}% (same model, same requests in flight, one run).",
        f"halve (inference nearly free): {halve['fps']:.0f} FPS; ms per frame, medians: {split}.", "",
    ]


def scaling_section(results: dict) -> list[str]:
    peak = results["peak"]["gflops"]
    rows = [[r["model"], f"{r['size']}x{r['size']}", f"{r['gmac']:.2f}", f"{r['cold_convert_s']:.1f}",
             f"{r['openvino_fps']:.1f}", f"{100 * r['gmac'] * 2 * r['openvino_fps'] / peak:.0f}%",
             f"{r['blob_bytes'] / 1024:.0f} KiB"] for r in results["scaling"]]
    return ["## Scaling", ""] + _table(
        ["model", "input", "GMAC", "cold convert s", "OpenVINO FPS", "of FP32 peak", "blob"], rows)


def rvc2_section(results: dict) -> list[str]:
    """Estimate vs published; absent from result files written before the estimate existed."""
    data = results.get("rvc2")
    if not data:
        return []
    rows = []
    for r in data["rows"]:
        if not r["built"]:
            rows.append([r["model"], r["input"], f"{r['published_fps']:g}", "-", "-", "-", "-", "(no graph)"])
            continue
        low, high = r["old_rule_fps"]
        rows.append([r["model"], r["input"], f"{r['published_fps']:g}", f"{r['gmac']:.2f}", f"{r['estimate_fps']:.1f}",
                     f"{r['held_out_fps']:.1f}", f"{100 * r['held_out_error']:+.0f}%", f"{low:.0f}-{high:.0f}"])
    return ["## RVC2 estimate vs published", "",
            f"Luxonis' published FPS ({data['shaves']} SHAVEs, {data['threads']} threads) against oakpipe's estimate "
            "fitted on every row, and held out (fitted without the row's family). Held out: median |error| "
            f"{100 * data['held_out_median_abs_error']:.0f}%, max {100 * data['held_out_max_abs_error']:.0f}%.", ""
            ] + _table(["model", "input", "published FPS", "GMAC", "estimate", "held out", "error",
                        "old 15-40 GMAC/s rule"], rows)


def decode_draw_section(results: dict) -> list[str]:
    """Decode + draw against inference per frame (oakpipe.bench.decode_draw); absent from older files."""
    data = results.get("decode_draw")
    if not data:
        return []
    title = "## Decode + draw against inference: YOLO n-size on the host"
    if data.get("skipped"):
        return [title, "", f"Not measured: {data['skipped']}.", ""]
    rows = []
    for r in data["rows"]:
        ms = r["ms"]
        rows.append([r["model"], f"{r['source']} {r['conf']:g}", f"{r['boxes'][0]} ({r['boxes'][1]})", f"{ms['inference']:.1f}",
                     f"{ms['decode']:.2f}", f"{ms['draw']:.2f}", f"{100 * r['ratio_median']:.1f}%",
                     f"{100 * r['ratio_p90']:.1f}%", f"{r['line_bytes']}"])
    return [title, "",
            f"{data['size']}x{data['size']}, one `oakpipe run --backend host` per row; per frame (decode + draw) / "
            f"inference, median and 90th percentile over the frames after the first {data['warmup']}; ms are medians. "
            "Random weights, BatchNorm recalibrated on photos: `photo` pans over oakpipe's photograph, `scene` is "
            "the built-in moving scene (hundreds of boxes from these weights); `--results` line: median bytes.", ""
            ] + _table(["model", "frames, conf", "boxes median (max)", "inference ms", "decode ms", "draw ms",
                        "ratio median", "ratio p90", "--results line B"], rows)


def markdown(results: dict) -> str:
    lines = [f"# oakpipe bench, {results['date']}{' (quick)' if results['quick'] else ''}", ""]
    for section in (machine_section, rvc2_section, conversion_section, large_models_section, inference_section, pipeline_section,
                    decode_draw_section, scaling_section):
        lines += section(results)
    return "\n".join(lines)
