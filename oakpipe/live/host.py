"""The host backend: an emulated OAK. Frames become exactly what the camera would send
(``fit_like_camera_preview`` then ``bgr_to_planar``, U8) and go through the export's IR
on the CPU with OpenVINO.

Inference runs in OpenVINO's threads (``AsyncInferQueue``) while this generator's caller
decodes and displays the previous frame and the next one is captured, like the camera,
NN node and host overlap on an OAK. Results are handed out strictly in frame order.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator

import numpy as np

from oakpipe.errors import InternalError
from oakpipe.live.result import Inferred
from oakpipe.preprocessing import bgr_to_planar, fit_like_camera_preview


def camera_frame(image: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Any BGR picture -> (the camera preview frame H x W x 3, its planar BGR888p tensor 1x3xHxW)."""
    frame = fit_like_camera_preview(image, width, height)
    return frame, bgr_to_planar(frame)[None]


def compile_model(xml):
    from oakpipe.stages.ir import compile_for_host

    return compile_for_host(xml)


def output_names(compiled) -> list[str]:
    names = []
    for index, port in enumerate(compiled.outputs):
        try:
            names.append(port.get_any_name())
        except RuntimeError:
            names.append(f"output{index}")
    return names


def host_inferred(compiled, frames: Iterator[np.ndarray], width: int, height: int, limit: int | None,
                  jobs: int = 2) -> Iterator[Inferred]:
    """Frames in, ``Inferred`` out, in order, with up to ``jobs`` inferences in flight."""
    import openvino as ov

    names = output_names(compiled)
    ready: dict[int, tuple[dict[str, np.ndarray], float]] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def on_done(request, index: int) -> None:
        try:
            outs = {n: np.array(request.get_output_tensor(i).data, copy=True) for i, n in enumerate(names)}
            with lock:
                ready[index] = (outs, float(request.latency))
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    queue = ov.AsyncInferQueue(compiled, jobs)
    queue.set_callback(on_done)
    pending: dict[int, tuple[np.ndarray, float, float, float]] = {}
    submitted = emitted = 0
    exhausted = False
    try:
        while True:
            if errors:
                raise InternalError(f"host inference failed: {errors[0]}", "rerun with --debug") from errors[0]
            with lock:
                item = ready.pop(emitted, None)
            if item is not None:
                frame, started, capture_ms, pre_ms = pending.pop(emitted)
                timing = {"capture": capture_ms, "preprocessing": pre_ms, "inference": item[1]}
                yield Inferred(emitted, frame, item[0], timing, started)
                emitted += 1
                continue
            if exhausted or (limit is not None and submitted >= limit):
                exhausted = True
                if emitted == submitted:
                    return
                queue.wait_all()
                continue
            started = time.perf_counter()
            image = next(frames, None)
            if image is None:
                exhausted = True
                continue
            captured = time.perf_counter()
            frame, planar = camera_frame(image, width, height)
            prepared = time.perf_counter()
            # latency runs from when the frame exists (a camera's timestamp), not from waiting for it
            pending[submitted] = (frame, captured, (captured - started) * 1e3, (prepared - captured) * 1e3)
            queue.start_async({0: planar}, userdata=submitted)  # waits for a free request
            submitted += 1
    finally:
        queue.wait_all()


def raw_throughput(compiled, tensor: np.ndarray, seconds: float = 3.0, jobs: int = 2) -> float:
    """Inferences per second of the bare compiled model on one fixed input (the benchmark's baseline)."""
    import openvino as ov

    queue = ov.AsyncInferQueue(compiled, jobs)
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or count < jobs:
        queue.start_async({0: tensor})
        count += 1
    queue.wait_all()
    elapsed = time.perf_counter() - start
    return count / elapsed if elapsed > 0 else math.nan
