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
        blob_bytes = export.blob.stat().st_size
    return {"model": model, "size": size, "cold_s": cold, "stages_s": stages,
            "cached_in_process_s": statistics.median(cached), "cached_cli_s": cli, "blob_bytes": blob_bytes}


def cached_cli_seconds(options: ConvertOptions, repeats: int) -> float:
    """End to end, as a user types it: interpreter start, imports, hashing, manifest."""
    args = [sys.executable, "-m", "oakpipe", "--quiet", "convert", options.model, "--no-verify",
            "--input-shape", ",".join(map(str, options.input_shape)), "--out", str(options.out)]
    if options.style:
        args += ["--style", str(options.style)]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
