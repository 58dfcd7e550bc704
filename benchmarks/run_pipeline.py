"""Host pipeline throughput vs raw OpenVINO inference, and the pipeline's own cost per frame.

    .venv/bin/python benchmarks/run_pipeline.py [--rounds 3] [--frames 60]

1. ``BenchCNN`` (about 1.2 GMAC at 256x256) is converted, compiled once on the CPU, and
   timed alternately as the bare compiled model (AsyncInferQueue, fixed input, same number
   of requests in flight) and as ``oakpipe run --backend host --source sample`` (capture,
   preprocessing, inference, decoding, no display). Medians over rounds; goal >= 90 %.
2. ``halve`` (inference is nearly free) shows the pipeline's own ms per frame, stage by
   stage, headless and with --record.
Not a test: figures depend on the machine; they are printed, one line each.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

os.environ.setdefault("DEPTHAI_TELEMETRY", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class BenchCNN(nn.Module):
    """Stride-2 stem, two 3x3 convs at 64 channels on 128x128, 1x1 head, upsample: an image out."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(
            nn.Conv2d(3, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
            nn.Conv2d(64, 3, 1), nn.Sigmoid(), nn.Upsample(scale_factor=2, mode="nearest"),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def macs(model: nn.Module, size: int = 256) -> float:
    total, hw = 0.0, size * size
    for layer in model.modules():
        if isinstance(layer, nn.Conv2d):
            hw = hw // (layer.stride[0] * layer.stride[1])
            total += layer.in_channels * layer.out_channels * layer.kernel_size[0] * layer.kernel_size[1] * hw
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=3.0, help="raw timing per round")
    parser.add_argument("--cv-threads", type=int, help="cv2.setNumThreads (experiment)")
    args = parser.parse_args()
    if args.cv_threads is not None:
        import cv2

        cv2.setNumThreads(args.cv_threads)

    import numpy as np

    import oakpipe.live.host as host
    from oakpipe import ConvertOptions, convert
    from oakpipe.live import RunOptions, run_export
    from oakpipe.live.sources import sample_frame
    from oakpipe.stages.ir import compile_for_host

    work = Path(tempfile.mkdtemp(prefix="oakpipe-bench-"))
    export = convert(ConvertOptions(model=f"{Path(__file__).resolve()}:BenchCNN", out=work / "bench"))
    print(f"BenchCNN: {macs(BenchCNN()) / 1e9:.2f} GMAC at 256x256, {os.cpu_count()} CPUs")
    compiled = compile_for_host(export.ir)
    original = host.compile_model
    host.compile_model = lambda xml: compiled  # the pipeline runs the very same compiled model
    _, tensor = host.camera_frame(sample_frame(0), 256, 256)
    raw, piped = [], []
    options = RunOptions(backend="host", source="sample", frames=args.frames, display="none")
    run_export(export.folder, RunOptions(backend="host", source="sample", frames=4, display="none"))  # warm-up
    for _ in range(args.rounds):
        raw.append(host.raw_throughput(compiled, tensor, args.seconds, jobs=options.jobs))
        piped.append(run_export(export.folder, options).mean_fps)
    host.compile_model = original
    r, p = statistics.median(raw), statistics.median(piped)
    print(f"raw OpenVINO   {r:7.1f} FPS (median of {args.rounds}: {', '.join(f'{v:.1f}' for v in raw)})")
    print(f"host pipeline  {p:7.1f} FPS (median of {args.rounds}: {', '.join(f'{v:.1f}' for v in piped)})")
    print(f"pipeline / raw {100 * p / r:6.1f} %  (goal >= 90 %)")

    halve = convert(ConvertOptions(model="halve", out=work / "halve"))
    for label, extra in (("headless", {}), ("--record", {"record": work / "halve.mp4"})):
        summary = run_export(halve.folder, RunOptions(backend="host", source="sample", frames=200, display="none",
                                                      **extra))
        split = "  ".join(f"{k} {v:.2f}" for k, v in summary.stage_median_ms().items())
        print(f"halve {label:<9} {summary.mean_fps:6.1f} FPS, latency {np.median(summary.latency_ms):.1f} ms; "
              f"median ms/frame: {split}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
