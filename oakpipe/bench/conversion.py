"""Conversion timings: cold and cached, per stage, and the 2021 way as the reference."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from oakpipe.convert import STAGES, convert
from oakpipe.models.stylizer import DEFAULT_STYLE_PATH
from oakpipe.options import ConvertOptions


def bench_options(model: str, size: int, out: Path) -> ConvertOptions:
    style = DEFAULT_STYLE_PATH if model in ("stylizer", "adain") else None
    return ConvertOptions(model=model, input_shape=(1, 3, size, size), style=style, out=out, verify=False)


def cold_and_cached(model: str, size: int, cached_repeats: int = 3) -> dict:
    """One cold convert (every stage), then cached converts: in-process and as a CLI call."""
    with tempfile.TemporaryDirectory(prefix="oakpipe-bench-") as tmp:
        options = bench_options(model, size, Path(tmp) / model)
        start = time.perf_counter()
        export = convert(replace(options, use_cache=False))
        cold = time.perf_counter() - start
        stages = {s: export.record.stages[s].seconds for s in STAGES}
        cached = []
        for _ in range(cached_repeats):
            start = time.perf_counter()
            convert(options)
            cached.append(time.perf_counter() - start)
        cli = cached_cli_seconds(options, cached_repeats)
        floor = cli_floor_seconds(cached_repeats)  # right after, so that the ratio compares like with like
        blob_bytes = export.blob.stat().st_size
    return {"model": model, "size": size, "cold_s": cold, "stages_s": stages,
            "cached_in_process_s": statistics.median(cached), "cached_cli_s": cli, **floor,
            "cached_cli_over_python": cli / floor["python_pass_s"], "cached_cli_over_help": cli / floor["help_s"],
            "blob_bytes": blob_bytes}


def _timed_runs(args: list[str], repeats: int) -> float:
    """Median wall time of ``args``, after one untimed run (it writes the byte-code caches an
    installed package has; the environment's PYTHONDONTWRITEBYTECODE is dropped for that)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(args, check=True, capture_output=True, env=env)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cli_floor_seconds(repeats: int) -> dict:
    """What any CLI call costs here: the interpreter alone, and oakpipe's own --help."""
    return {"python_pass_s": _timed_runs([sys.executable, "-c", "pass"], repeats),
            "help_s": _timed_runs([sys.executable, "-m", "oakpipe", "--help"], repeats)}


def cached_cli_seconds(options: ConvertOptions, repeats: int) -> float:
    """End to end, as a user types it: interpreter start, imports, hashing, manifest."""
    args = [sys.executable, "-m", "oakpipe", "--quiet", "convert", options.model, "--no-verify",
            "--input-shape", ",".join(map(str, options.input_shape)), "--out", str(options.out)]
    if options.style:
        args += ["--style", str(options.style)]
    return _timed_runs(args, repeats)


def large_model_cold(label: str, options: ConvertOptions) -> dict:
    """One cold convert, verify included, split by stage (the manifest's own timings)."""
    from oakpipe.convert import Export
    from oakpipe.errors import VerificationError

    start = time.perf_counter()
    try:
        export = convert(replace(options, use_cache=False, verify=True))
    except VerificationError:  # random weights can leave FP16's range: timed all the same, marked unverified
        export = Export.open(Path(options.out or ""))
    total = time.perf_counter() - start
    record = export.record
    stages = {s: record.stages[s].seconds for s in (*STAGES, "verify") if s in record.stages}
    return {"model": label, "input": list(options.input_shape), "cold_s": total, "stages_s": stages,
            "archive_share": stages.get("archive", 0.0) / total, "verified": record.verified,
            "blob_bytes": export.blob.stat().st_size, "archive_bytes": export.archive.stat().st_size}


def large_models(workdir: Path) -> list[dict]:
    """ResNet-50 at 224 (built in oakpipe.bench.models) and YOLOv8n at 416 (Ultralytics' own
    definition, when Ultralytics is installed: a row that says why it is absent otherwise)."""
    from oakpipe.bench import models

    rows = [large_model_cold("ResNet-50", ConvertOptions(
        model=f"{models.__file__}:ResNet50", input_shape=(1, 3, 224, 224), out=workdir / "resnet50"))]
    try:
        yolo = models.yolov8n_file(workdir)
    except ImportError as exc:
        rows.append({"model": "YOLOv8n", "input": [1, 3, 416, 416], "skipped": f"Ultralytics is not installed ({exc})"})
    else:
        rows.append(large_model_cold("YOLOv8n", ConvertOptions(model=f"{yolo}:yolov8n", input_shape=(1, 3, 416, 416),
                                                               out=workdir / "yolov8n")))
    return rows


def manual_2021_chain(device_onnx: Path, workdir: Path) -> dict | None:
    """The chain as the 2021 workflow ran it: the 2021.4 Model Optimizer to an FP16 IR, then
    the compile as a separate process with the plugin's stock device search. Needs
    ``oakpipe toolchain install --with-model-optimizer``; None when it is absent."""
    from oakpipe import privacy
    from oakpipe.toolchain import WORKER, toolchain_python
    from oakpipe.toolchain.install import has_model_optimizer

    if not has_model_optimizer():
        return None
    start = time.perf_counter()
    subprocess.run([str(toolchain_python()), *privacy.python_module_args("mo"), "--input_model", str(device_onnx), "--data_type", "FP16", "--output_dir",
                    str(workdir)], check=True, capture_output=True)
    mo_seconds = time.perf_counter() - start
    xml = workdir / (device_onnx.stem + ".xml")
    request = workdir / "request.json"
    request.write_text('{"onnx": "%s", "blob": "%s", "shaves": 6}' % (xml, workdir / "manual.blob"))
    env = dict(os.environ, OAKPIPE_SLOW_COMPILE="1")
    start = time.perf_counter()
    subprocess.run([str(toolchain_python()), str(WORKER), str(request)], check=True, capture_output=True, env=env)
    compile_seconds = time.perf_counter() - start
    return {"model_optimizer_s": mo_seconds, "compile_s": compile_seconds, "total_s": mo_seconds + compile_seconds}
