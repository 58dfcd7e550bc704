"""``run_export``: an export, a frame source and a backend, through decoding to the screen.

The backends (``device``, ``host``) only produce ``Inferred`` frames in order; what
happens after (decoding, the side-by-side view, window, recording, timing) is here, once.
Every check that can fail (export, source, output paths, display) runs before the model
is compiled or the camera opened, and every file is closed whatever ends the run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

from oakpipe.live.decode import decode_outputs
from oakpipe.live.display import Outputs, choose_display, overlay, side_by_side
from oakpipe.live.export_check import RunnableExport, open_for_run
from oakpipe.live.options import DEFAULT_HEADLESS_FRAMES, RunOptions
from oakpipe.live.result import BACKEND_STAGES, STAGES, Inferred, RunSummary, rolling_fps
from oakpipe.live.signals import (
    STOPPED_BY,
    file_size_limit_is_an_error,
    held,
    signal_of,
    stop_on_signals,
)
from oakpipe.progress import Progress
from oakpipe.tasks.live_step import TaskStep


def choose_backend(requested: str, progress: Progress) -> str:
    """``auto`` -> the camera if one is attached, else the host emulator; says which."""
    if requested != "auto":
        return requested
    from oakpipe.live.oak_devices import list_oaks

    devices = list_oaks()  # busy or unreadable ones too: the device backend then says why it cannot use them
    choice = "device" if devices else "host"
    progress.say(f"  backend    {choice} ({'an OAK is attached' if devices else 'no OAK attached: emulating it on the CPU'})")
    return choice


def run_export(export: Path | RunnableExport, options: RunOptions, progress: Progress | None = None,
               on_frame=None) -> RunSummary:
    """Run an export live; ``on_frame(inferred, picture)`` sees every decoded frame (tests, tools).

    SIGTERM and SIGHUP stop the frame loop like Ctrl-C (``oakpipe.live.signals``), so the
    files are complete whatever ends the run; a file that could not be written is a UserError.
    """
    with stop_on_signals():
        return _run(export, options, progress or Progress(quiet=True), on_frame)


def _run(export: Path | RunnableExport, options: RunOptions, progress: Progress, on_frame) -> RunSummary:
    runnable = export if isinstance(export, RunnableExport) else open_for_run(Path(export))
    window, why = choose_display(options.display)
    backend = choose_backend("device" if options.device else options.backend, progress)  # --device: an OAK
    limit = options.frames
    if backend == "device":
        from oakpipe.live.device import device_stream

        stream, source_name, source_fps, limit, closers = device_stream(runnable, options, window)
    else:
        stream, source_name, source_fps, limit, closers = _host_stream(runnable, options, window, progress)
    progress.say(f"  run        {runnable.name} {runnable.width}x{runnable.height} on {backend}, "
                 f"source {source_name}, display: {why}" + (f", {limit} frames" if limit else ""))
    with file_size_limit_is_an_error():
        outputs = Outputs(options, window, options.fps or source_fps or 30.0, name=runnable.name)
        tasks = TaskStep.open(runnable.export, options)  # decodes/draws task models; None otherwise
        try:
            summary = _loop(stream, runnable, outputs, backend, source_name, on_frame, tasks)
        finally:  # on any exit: every file finished (or removed), the source released
            with held():
                failure = outputs.close()
                results_failure = tasks.close() if tasks is not None else None  # closed whatever the others did
                failure = failure or results_failure
                for close in closers:
                    close()
    if failure is not None:
        raise failure
    return summary


def _host_stream(runnable: RunnableExport, options: RunOptions, window: bool, progress: Progress):
    from oakpipe.live.host import compile_model, host_inferred
    from oakpipe.live.sources import open_source, paced

    source = open_source(options.source, repeat=options.frames, preview=(runnable.width, runnable.height))
    limit = options.frames
    if limit is None and source.endless and not window:
        limit = DEFAULT_HEADLESS_FRAMES
    try:
        started = time.perf_counter()
        compiled = compile_model(runnable.export.ir)
        progress.say(f"  compile    {time.perf_counter() - started:6.2f} s  {runnable.export.ir.name} on CPU (OpenVINO)")
    except BaseException:
        source.close()
        raise
    frames = paced(source.frames, options.fps)
    stream = host_inferred(compiled, frames, runnable.width, runnable.height, limit, options.jobs)
    return stream, source.description, source.fps, limit, [source.close]


def _loop(stream: Iterator[Inferred], runnable: RunnableExport, outputs: Outputs, backend: str,
          source_name: str, on_frame, tasks: TaskStep | None = None) -> RunSummary:
    stage_ms: dict[str, list[float]] = {s: [] for s in STAGES}
    latency: list[float] = []
    shows, stopped_by, signum = "", "source ended", None
    begun = time.perf_counter()
    recent: list[float] = []
    try:
        for item in stream:
            with held():  # a signal here stops the run after this frame, not inside it
                keep_going, shows = _one_frame(item, runnable, outputs, backend, on_frame, recent, stage_ms, latency,
                                              tasks, begun)
            if not keep_going:
                stopped_by = "stopped by the user"
                break
        else:
            stopped_by = "source ended or --frames reached"
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM or SIGHUP
        signum = signal_of(exc)
        stopped_by = STOPPED_BY.get(signum, "interrupted")  # type: ignore[call-overload]  # Signals are ints
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            with held():
                close()
    seconds = time.perf_counter() - begun
    return RunSummary(backend, source_name, len(latency), seconds, stopped_by, stage_ms, latency, shows, signum)


def _one_frame(item: Inferred, runnable: RunnableExport, outputs: Outputs, backend: str, on_frame,
               recent: list[float], stage_ms: dict[str, list[float]], latency: list[float],
               tasks: TaskStep | None, begun: float) -> tuple[bool, str]:
    """Decode, draw, show, record and time one frame; -> (keep going?, what the output shows as)."""
    t0 = time.perf_counter()
    if tasks is not None:  # a detector, segmenter, pose or classifier: decoded, then drawn
        decoded = tasks.decode(item, begun)
        t_decoded = time.perf_counter()
        picture, shows = tasks.draw(item, decoded)
    else:  # the generic view: its picture is its decoding
        picture, shows = decode_outputs(item.outputs, runnable.preprocessing, (runnable.width, runnable.height))
        t_decoded = math.nan
    t1 = time.perf_counter()
    clean = side_by_side(item.frame, picture)
    if on_frame is not None:
        on_frame(item, picture)
    fps = rolling_fps(recent, t1)
    shown = overlay(clean, fps, (t1 - item.started) * 1e3, backend) if outputs.needs_overlay else None
    keep_going = outputs.show(item.index, clean, shown)
    t2 = time.perf_counter()
    for stage in BACKEND_STAGES:  # the backend's own; decoding, drawing and display are measured here
        stage_ms[stage].append(item.timing.get(stage, math.nan))
    stage_ms["decode"].append(((t1 if math.isnan(t_decoded) else t_decoded) - t0) * 1e3)
    stage_ms["draw"].append((t1 - t_decoded) * 1e3)  # NaN for the generic view
    stage_ms["display"].append((t2 - t1) * 1e3)
    latency.append((t2 - item.started) * 1e3)
    return keep_going, shows
