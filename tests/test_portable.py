"""Numbers that do not depend on the CPU: every OpenVINO compile that oakpipe's checks and
tests read runs in float32, whatever the CPU offers. OpenVINO's CPU plugin otherwise
infers in bf16 on CPUs with AVX512-BF16 or AMX (the stylizer's IR: 53.9 dB against the
device graph in bf16, 77.5 dB in f32 here; 77.5 dB under qemu's AVX2-only CPU too)."""

from __future__ import annotations

from pathlib import Path

import openvino as ov

from oakpipe import toolchain
from oakpipe.stages.ir import compile_for_host


def cpu_flags() -> set[str]:
    """The host CPU's feature flags, read, not assumed."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def test_host_compile_is_float32_on_any_cpu(halve_export):
    compiled = compile_for_host(halve_export.ir)
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32


def test_without_the_hint_this_cpu_would_choose_by_its_flags(halve_export):
    """Why the hint is needed, on this CPU: bf16 exactly where the flags offer it."""
    default = ov.Core().compile_model(str(halve_export.ir), "CPU").get_property("INFERENCE_PRECISION_HINT")
    has_bf16 = bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})
    assert default == (ov.Type.bf16 if has_bf16 else ov.Type.f32)


def test_the_2021_cpu_plugin_runs_without_bf16():
    """The 2021.4 reader stage (compile_worker.run_on_cpu) turns bf16 off in its own words;
    the worker runs in another interpreter, so its source is what can be checked here."""
    source = Path(toolchain.WORKER).read_text()
    assert 'core.load_network(network, "CPU", {"ENFORCE_BF16": "NO"})' in source
    assert source.count('"CPU"') == 1  # no other CPU compile without the setting
