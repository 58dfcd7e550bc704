"""The machine a benchmark ran on, and its measured FP32 limit."""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import subprocess
import sys

from oakpipe.versions import tool_versions


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe_machine() -> dict:
    flags = ""
    try:
        flags = next(ln for ln in open("/proc/cpuinfo") if ln.startswith("flags"))
    except (OSError, StopIteration):
        pass
    return {
        "host": socket.gethostname(), "cpu": cpu_model(), "cores": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flags, "python": platform.python_version(),
        "platform": platform.platform(), "versions": tool_versions(),
    }


PEAK_SCRIPT = """
import json, sys, time, numpy as np
size, repeats = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
a = rng.random((size, size), dtype=np.float32); b = rng.random((size, size), dtype=np.float32)
a @ b
rates = []
for _ in range(repeats):
    start = time.perf_counter(); a @ b; rates.append(2 * size ** 3 / (time.perf_counter() - start) / 1e9)
print(json.dumps(rates))
"""


def peak_fp32_gflops(size: int = 2048, repeats: int = 7) -> dict:
    """One large float32 matrix product (numpy's BLAS): 2 n^3 FLOPs a run; the best of
    ``repeats`` is the peak, the median is reported beside it. It runs in a fresh process
    without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, which some machines set to keep old
    OpenBLAS builds safe and which slow a current one to a fraction of the CPU's speed."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(size), str(repeats)], capture_output=True,
                         text=True, env=env, check=True)
    rates = json.loads(out.stdout)
    return {"gflops": max(rates), "median": statistics.median(rates), "min": min(rates), "size": size,
            "method": f"numpy float32 {size}^3 matmul, best of {repeats}"}
