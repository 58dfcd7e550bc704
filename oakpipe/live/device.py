"""The device backend: the one module that builds depthai pipelines (v3, RVC2).

Camera -> ``requestOutput((W, H), BGR888p)`` -> NeuralNetwork (the export's blob) ->
host queues for the network's output and its passthrough frame. Everything after the
queues (decoding, display) is the same code the host backend uses. ``dai`` is a
parameter so the loop can be tested with a stand-in module where no OAK is attached.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from oakpipe import privacy
from oakpipe.errors import DeviceError
from oakpipe.live.decode import nn_data_to_outputs
from oakpipe.live.export_check import RunnableExport
from oakpipe.live.result import Inferred

NO_DEVICE_HINT = "plug an OAK into a USB3 port (in a container: -v /dev/bus/usb:/dev/bus/usb), or use --backend host"
ON_DEVICE = {"capture": math.nan, "preprocessing": math.nan, "inference": math.nan}


def load_depthai() -> ModuleType:
    privacy.apply()  # telemetry off even if the environment changed since import
    import depthai

    return depthai


def attached_devices(dai: Any = None) -> list:
    """Devices depthai can see (about 0.5 s with none), instead of an 11 s open timeout."""
    dai = dai or load_depthai()
    try:
        return list(dai.Device.getAllAvailableDevices())
    except RuntimeError:  # e.g. DEPTHAI_PROTOCOL=usb without /dev/bus/usb
        return []


def require_device(dai: Any = None) -> Any:
    devices = attached_devices(dai)
    if not devices:
        raise DeviceError("no OAK camera is attached (depthai finds no device)", NO_DEVICE_HINT)
    return devices[0]


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
    """Time since the camera captured the frame, on depthai's host-synchronised clock."""
    try:
        return max(0.0, (dai.Clock.now() - message.getTimestamp()).total_seconds())
    except Exception:  # a stand-in message without timestamps
        return 0.0


def build_pipeline(dai: Any, runnable: RunnableExport, fps: float | None) -> tuple[Any, Any, Any]:
    """-> (pipeline, NN output queue, passthrough frame queue); the one place a depthai graph is made."""
    pipeline = dai.Pipeline()
    camera = pipeline.create(dai.node.Camera).build(dai.CameraBoardSocket.CAM_A)
    frame_type = getattr(dai.ImgFrame.Type, runnable.export.manifest.get("dai_type", "BGR888p"))  # NN Archives
    preview = camera.requestOutput((runnable.width, runnable.height), frame_type,
                                   dai.ImgResizeMode.CROP, fps)
    nn = pipeline.create(dai.node.NeuralNetwork)
    nn.setBlobPath(str(runnable.export.blob))
    nn.setNumInferenceThreads(2)
    preview.link(nn.input)
    results = nn.out.createOutputQueue(maxSize=4, blocking=False)
    frames = nn.passthrough.createOutputQueue(maxSize=4, blocking=False)
    return pipeline, results, frames


def device_inferred(runnable: RunnableExport, fps: float | None, limit: int | None,
                    dai: Any = None) -> Iterator[Inferred]:
    """Frames and NN results from an attached OAK, in order, as ``Inferred``."""
    dai = dai or load_depthai()
    require_device(dai)
    names = [p["name"] for p in runnable.export.manifest["stages"]["blob"]["info"]["blob"]["outputs"]]
    try:
        pipeline, results, frames = build_pipeline(dai, runnable, fps)
        pipeline.start()
    except RuntimeError as exc:
        raise DeviceError(f"the OAK refused the pipeline: {str(exc).strip().splitlines()[0]}",
                          "unplug and replug it; check it is not used by another program") from exc
    pairer, index = SequencePairer(), 0
    try:
        while pipeline.isRunning() and (limit is None or index < limit):
            pairs = pairer.add(result=results.get()) + pairer.add(frame=frames.tryGet())
            if not pairs:
                pairs = pairer.add(frame=frames.get())
            for frame_msg, nn_msg in pairs:
                if limit is not None and index >= limit:
                    return
                started = time.perf_counter() - latency_seconds(dai, frame_msg)
                outputs = nn_data_to_outputs(nn_msg, names)
                yield Inferred(index, frame_msg.getCvFrame(), outputs, dict(ON_DEVICE), started)
                index += 1
    except RuntimeError as exc:
        raise DeviceError(f"the OAK stopped: {str(exc).strip().splitlines()[0]}", "check the USB cable") from exc
    finally:
        pipeline.stop()
