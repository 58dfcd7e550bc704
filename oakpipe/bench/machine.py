"""The machine a benchmark ran on, and its measured FP32 limit."""

from __future__ import annotations

import os
import platform
import socket
import statistics
import time

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


def peak_fp32_gflops(size: int = 2048, repeats: int = 5) -> dict:
    """One large float32 matrix product (numpy's BLAS), median of ``repeats``: 2 n^3 FLOPs."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    a @ b  # warm-up: thread pool and caches
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        rates.append(2 * size**3 / (time.perf_counter() - start) / 1e9)
    return {"gflops": statistics.median(rates), "min": min(rates), "max": max(rates), "size": size,
            "method": f"numpy float32 {size}^3 matmul, median of {repeats}"}
