"""The device backend: the one module that builds depthai pipelines (v3, RVC2).

Camera -> ``requestOutput((W, H), BGR888p, CROP)`` -> NeuralNetwork (the export's blob) ->
host queues for the network's output and its passthrough frame; or, with a recorded
source, host frames -> the NeuralNetwork's input queue -> the same output queue. After the
queues (decoding, display) runs the code the host backend uses. ``dai`` is a parameter so
the loop can be tested on depthai's own offline classes where no OAK is attached.

Every wait has a deadline: a disconnect closes depthai's queues (``QueueException``, which
is not a ``RuntimeError``), a stalled device just stops sending; both end the run with a
``DeviceError`` that the run loop's cleanup turns into closed files and one line.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from oakpipe.blobfile import SUPERBLOB_SHAVES, superblob_variant  # noqa: F401 (SUPERBLOB_SHAVES: callers)
from oakpipe.errors import DeviceError, UserError
from oakpipe.live import oak_devices
from oakpipe.live.decode import nn_data_to_outputs
from oakpipe.live.oak_devices import Oak, choose_oak, list_oaks, load_depthai, open_device, usb_speed_warning
from oakpipe.live.result import Inferred
from oakpipe.live.runnable import RunnableExport

__all__ = ["DeviceSettings", "SequencePairer", "device_inferred", "load_depthai", "require_device"]

ON_DEVICE = {"capture": math.nan, "preprocessing": math.nan, "inference": math.nan}
#: Luxonis' recommendation for RVC2: two inference threads, each with half the NN SHAVEs.
INFERENCE_THREADS = 2
#: The first result waits for the firmware, the blob upload and the camera's first frame.
FIRST_RESULT_S = 20.0
#: Later, a result is overdue after this many expected frame times (never under STALL_MIN_S).
STALL_FACTOR, STALL_MIN_S = 10.0, 3.0
STOPPED_HINT = "check the USB cable and power"


@dataclass(frozen=True)
class DeviceSettings:
    """What the user may choose about the OAK (``--device``, ``--nn-queue``)."""

    device: str | None = None
    nn_queue: int = 1


def require_device(dai: Any = None, wanted: str | None = None) -> Oak:
    """The OAK to run on, or one DeviceError line saying why there is none to use."""
    return choose_oak(list_oaks(dai), wanted)


class SequencePairer:
    """Pairs NN results with their passthrough frames by sequence number.

    The two queues can drop different messages when the host falls behind; pairing by
    number (and forgetting anything older than a match) keeps frame and result together.
    """

    def __init__(self) -> None:
        self.frames: dict[int, Any] = {}
        self.results: dict[int, Any] = {}

    def add(self, frame: Any = None, result: Any = None) -> list[tuple[Any, Any]]:
        if frame is not None:
            self.frames[frame.getSequenceNum()] = frame
        if result is not None:
            self.results[result.getSequenceNum()] = result
        pairs = []
        for seq in sorted(set(self.frames) & set(self.results)):
            pairs.append((self.frames.pop(seq), self.results.pop(seq)))
            for store in (self.frames, self.results):
                for old in [s for s in store if s < seq]:
                    del store[old]
        return pairs


def latency_seconds(dai: Any, message: Any) -> float:
    """Time since the frame was captured (or sent), on depthai's host-synchronised clock."""
    return max(0.0, (dai.Clock.now() - message.getTimestamp()).total_seconds())


def expected_frame_s(runnable: RunnableExport, fps: float | None) -> float:
    """The slowest plausible time per result: the preflight's low FPS estimate, the asked FPS."""
    estimate = runnable.export.record.estimated_fps
    candidates = [1.0 / fps] if fps else []
    if estimate and estimate[0] > 0:
        candidates.append(1.0 / estimate[0])
    return max(candidates, default=1 / 30)


class Deadline:
    """``get`` on a depthai queue that ends in a DeviceError, never in a hang or a library error."""

    def __init__(self, dai: Any, pipeline: Any, frame_s: float) -> None:
        self.dai, self.pipeline = dai, pipeline
        self.later_s = max(STALL_MIN_S, STALL_FACTOR * frame_s)
        self.seconds = max(FIRST_RESULT_S, self.later_s)

    def get(self, queue: Any) -> Any:
        try:
            message = queue.get(timedelta(seconds=self.seconds))
        except (self.dai.MessageQueue.QueueException, RuntimeError) as exc:
            raise stopped(f"its queue closed: {str(exc).strip()}") from exc
        if message is None:
            if not self.pipeline.isRunning():
                raise stopped("the pipeline stopped")
            raise stopped(f"no result in {self.seconds:.0f} s")
        self.seconds = self.later_s
        return message

    def check_running(self) -> None:
        if not self.pipeline.isRunning():
            raise stopped("the pipeline stopped")


def stopped(why: str) -> DeviceError:
    return DeviceError(f"the OAK stopped responding ({why})", STOPPED_HINT)


def set_model(dai: Any, nn: Any, blob_path: str) -> None:
    """The blob, or the SUPERBLOB_SHAVES variant of a superblob, into the NeuralNetwork node."""
    try:
        if blob_path.endswith(".superblob"):
            nn.setBlob(superblob_variant(dai, blob_path))
        else:
            nn.setBlobPath(blob_path)
    except RuntimeError as exc:  # e.g. a blob for another platform (RVC3/RVC4): the file is at fault
        raise UserError(f"{Path(blob_path).name} cannot run on an OAK (RVC2): {str(exc).strip().splitlines()[0]}",
                        "convert the model for RVC2 (oakpipe convert)") from exc


def build_pipeline(dai: Any, device: Any, runnable: RunnableExport, fps: float | None, settings: DeviceSettings,
                   from_host: bool) -> tuple[Any, Any, Any, Any]:
    """-> (pipeline, NN output queue, passthrough queue or None, host input queue or None).

    The one place a depthai graph is made: camera -> NN, or a host input queue -> NN.
    """
    pipeline = dai.Pipeline(device)
    nn = pipeline.create(dai.node.NeuralNetwork)
    set_model(dai, nn, str(runnable.export.blob))
    nn.setNumInferenceThreads(INFERENCE_THREADS)
    results = nn.out.createOutputQueue(maxSize=4, blocking=False)
    if from_host:
        nn.input.setBlocking(True)  # a recorded source waits for the network: no frame is dropped
        nn.input.setMaxSize(settings.nn_queue)
        return pipeline, results, None, nn.input.createInputQueue(maxSize=INFERENCE_THREADS, blocking=True)
    camera = pipeline.create(dai.node.Camera).build(dai.CameraBoardSocket.CAM_A)
    preview = camera.requestOutput((runnable.width, runnable.height), frame_type(dai, runnable),
                                   dai.ImgResizeMode.CROP, fps)
    preview.link(nn.input)
    nn.input.setBlocking(False)  # the camera never waits for the network: latency stays one frame
    nn.input.setMaxSize(settings.nn_queue)
    return pipeline, results, nn.passthrough.createOutputQueue(maxSize=4, blocking=False), None


def frame_type(dai: Any, runnable: RunnableExport) -> Any:
    return getattr(dai.ImgFrame.Type, runnable.export.record.dai_type)  # RGB888p: some NN Archives


def device_inferred(runnable: RunnableExport, fps: float | None, limit: int | None, dai: Any = None,
                    settings: DeviceSettings | None = None,
                    source: Iterator[np.ndarray] | None = None) -> Iterator[Inferred]:
    """Frames and NN results from an OAK, in order, as ``Inferred``.

    ``source`` (BGR pictures) is sent to the OAK's network instead of its camera.
    """
    dai = dai or oak_devices.load_depthai()  # looked up here: the one place tests replace it
    settings = settings or DeviceSettings()
    oak = require_device(dai, settings.device)
    blob = runnable.export.record.blob
    if blob is None:
        raise UserError(f"{runnable.name} records no blob", "run oakpipe convert again")
    names = blob.output_names
    device = open_device(oak, dai)
    slow = usb_speed_warning(device.getUsbSpeed())
    if slow:
        logging.getLogger("oakpipe").warning(slow)
    try:
        pipeline, results, frames, inputs = build_pipeline(dai, device, runnable, fps, settings, source is not None)
        pipeline.start()
    except RuntimeError as exc:
        device.close()
        raise DeviceError(f"the OAK refused the pipeline: {str(exc).strip().splitlines()[0]}",
                          "unplug and replug it; check it is not used by another program") from exc
    except BaseException:  # e.g. a superblob without the variant: the device must not stay open
        device.close()
        raise
    deadline = Deadline(dai, pipeline, expected_frame_s(runnable, fps))
    try:
        if source is None:
            pairs = camera_pairs(deadline, results, frames)
        else:
            pairs = host_pairs(dai, deadline, runnable, inputs, results, source)
        for index, (frame, nn_msg) in enumerate(pairs):
            received = latency_seconds(dai, nn_msg)  # capture (or send) to host receipt, depthai's clock
            started = time.perf_counter() - received
            timing = {**ON_DEVICE, "receive": received * 1e3}
            yield Inferred(index, frame, nn_data_to_outputs(nn_msg, names), timing, started)
            if limit is not None and index + 1 >= limit:
                return
    finally:
        with contextlib.suppress(Exception):  # a lost device may fail to stop: keep the error that ended the run
            pipeline.stop()
        with contextlib.suppress(Exception):
            device.close()


def camera_pairs(deadline: Deadline, results: Any, frames: Any) -> Iterator[tuple[np.ndarray, Any]]:
    """(passthrough frame's picture, NN result), matched by sequence number."""
    pairer = SequencePairer()
    while True:
        deadline.check_running()
        result = deadline.get(results)
        pairs = pairer.add(result=result)
        while not pairs and max(pairer.frames, default=-1) < result.getSequenceNum():
            pairs = pairer.add(frame=deadline.get(frames))
        for frame_msg, nn_msg in pairs:
            yield frame_msg.getCvFrame(), nn_msg


def host_pairs(dai: Any, deadline: Deadline, runnable: RunnableExport, inputs: Any, results: Any,
               source: Iterator[np.ndarray]) -> Iterator[tuple[np.ndarray, Any]]:
    """Host pictures -> the OAK's network, INFERENCE_THREADS in flight; results paired by sequence number.

    A result that never comes (the device dropped the frame) is skipped once a later one arrives.
    """
    from oakpipe.live.host import camera_frame

    sent: dict[int, Any] = {}
    kind, seq, exhausted = frame_type(dai, runnable), 0, False
    while True:
        while not exhausted and len(sent) < INFERENCE_THREADS:
            image = next(source, None)
            if image is None:
                exhausted = True
                break
            frame, _ = camera_frame(image, runnable.width, runnable.height)
            inputs.send(to_img_frame(dai, frame, kind, seq))
            sent[seq], seq = frame, seq + 1
        if not sent:
            return
        deadline.check_running()
        result = deadline.get(results)
        number = result.getSequenceNum()
        for old in [s for s in sent if s < number]:
            del sent[old]
        if number in sent:
            yield sent.pop(number), result


def to_img_frame(dai: Any, frame: np.ndarray, kind: Any, seq: int) -> Any:
    """A host picture (BGR, already the network's size) as the ImgFrame the camera would send."""
    message = dai.ImgFrame()
    try:
        message.setCvFrame(frame, kind)
    except RuntimeError as exc:
        raise UserError(f"a source frame cannot be sent to the OAK as {kind}: {exc}",
                        "use a colour video or image") from exc
    message.setSequenceNum(seq)
    message.setTimestamp(dai.Clock.now())
    return message


def device_stream(runnable: RunnableExport, options: Any, window: bool) -> tuple[Iterator[Inferred], str, Any, Any, list]:
    """-> (stream, source description, source fps, frame limit, closers) for ``run_export``.

    ``--source sample`` (the default) means the OAK's own camera; a video, image, folder or
    webcam is sent from the host to the OAK's network instead.
    """
    from oakpipe.live.options import DEFAULT_HEADLESS_FRAMES

    settings = DeviceSettings(options.device, options.nn_queue)
    oak = require_device(None, settings.device)  # one line now, before any file is opened
    where = f"OAK {oak.device_id or oak.name}, {INFERENCE_THREADS} inference threads, NN queue {settings.nn_queue}"
    limit = options.frames
    if options.source == "sample":
        if limit is None and not window:
            limit = DEFAULT_HEADLESS_FRAMES
        return device_inferred(runnable, options.fps, limit, None, settings), f"OAK camera ({where})", options.fps, \
            limit, []
    from oakpipe.live.sources import open_source, paced

    source = open_source(options.source, repeat=options.frames, preview=(runnable.width, runnable.height))
    if limit is None and source.endless and not window:
        limit = DEFAULT_HEADLESS_FRAMES
    frames = paced(source.frames, options.fps)
    stream = device_inferred(runnable, options.fps, limit, None, settings, frames)
    return stream, f"{source.description} sent to the OAK ({where})", source.fps, limit, [source.close]
