"""Host inference speed of one export, side by side in one run: PyTorch eager,
onnxruntime, OpenVINO (the IR) and the whole ``oakpipe run`` host pipeline."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from oakpipe.convert import Export


def frames_per_second(step: Callable[[], object], seconds: float, warmup: int = 2) -> float:
    """Calls per second of ``step`` over about ``seconds`` (after ``warmup`` calls)."""
    for _ in range(warmup):
        step()
    count, start = 0, time.perf_counter()
    while count < 3 or time.perf_counter() - start < seconds:
        step()
        count += 1
    return count / (time.perf_counter() - start)


def median_of(measure: Callable[[], float], repeats: int) -> dict:
    values = [measure() for _ in range(repeats)]
    return {"fps": statistics.median(values), "min": min(values), "max": max(values), "runs": repeats}


def torch_fps(module, shape: tuple[int, ...], seconds: float, repeats: int) -> dict:
    import torch

    x = torch.rand(shape)

    def step():
        with torch.no_grad():
            module(x)

    return median_of(lambda: frames_per_second(step, seconds), repeats)


def onnxruntime_fps(export: Export, seconds: float, repeats: int) -> dict:
    import onnxruntime as ort

    session = ort.InferenceSession(str(export.onnx), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random(export.input_shape, dtype=np.float32)
    name = session.get_inputs()[0].name
    return median_of(lambda: frames_per_second(lambda: session.run(None, {name: x}), seconds), repeats)


def openvino_fps(export: Export, seconds: float, repeats: int) -> dict:
    """The IR alone, asynchronous requests as the pipeline uses them: its ceiling."""
    from oakpipe.live.host import compile_model, raw_throughput

    compiled = compile_model(export.ir)
    frame = np.random.default_rng(0).integers(0, 256, export.input_shape, dtype=np.uint8)
    raw_throughput(compiled, frame, seconds=0.5)  # warm-up
    return median_of(lambda: raw_throughput(compiled, frame, seconds=seconds), repeats)


def pipeline_fps(export: Export, frames: int, repeats: int) -> dict:
    """``oakpipe run --backend host --source sample --display none``: capture, preprocessing,
    inference, decoding and the side-by-side view, all counted.

    Steady state: runs of ``frames`` and of ``2 * frames`` are timed and the difference is
    taken, so the fixed cost of starting a run (filling the queue, OpenVINO's first
    inferences on fresh requests) is not charged to the frames, as it is not to raw FPS."""
    from oakpipe.live.options import RunOptions
    from oakpipe.live.pipeline import run_export
    from oakpipe.progress import Progress

    def run(count: int):
        options = RunOptions(backend="host", source="sample", frames=count, display="none")
        return run_export(export.folder, options, Progress(quiet=True))

    fps, last = [], None
    for _ in range(repeats):
        short, last = run(frames), run(2 * frames)
        fps.append(frames / max(last.seconds - short.seconds, 1e-9))
    return {"fps": statistics.median(fps), "min": min(fps), "max": max(fps), "runs": repeats,
            "stage_ms": last.stage_median_ms() if last is not None else {}}
