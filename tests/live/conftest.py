"""Fixtures for ``oakpipe run``: a converted halve export and a small generated video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def halve_dir(request) -> Path:
    """The session's halve export (converted once by tests/conftest.py); needs the compiler."""
    from oakpipe import toolchain

    if not toolchain.status().installed:
        pytest.skip("MyriadX toolchain not installed (oakpipe toolchain install): no blob to run")
    return Path(request.getfixturevalue("halve_export").folder)


def write_video(path: Path, count: int, size: tuple[int, int] = (160, 120)) -> list[np.ndarray]:
    """A small mp4 of distinct, textured frames; returns the frames as decoded back."""
    import cv2

    from oakpipe.live.sources import sample_frame

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, size)
    for i in range(count):
        writer.write(cv2.resize(sample_frame(i * 3), size, interpolation=cv2.INTER_AREA))
    writer.release()
    capture, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


@pytest.fixture
def video(tmp_path) -> tuple[Path, list[np.ndarray]]:
    path = tmp_path / "clip.mp4"
    return path, write_video(path, 12)


# --- A stand-in OAK built from depthai's own classes -------------------------------------------
# Only what needs a device is stood in for, and every stand-in is an autospec of the installed
# depthai (module, Pipeline, nodes, ports, Device): a misspelled or removed depthai name fails.
# Messages, queues, device infos, the clock and the enums are depthai's real offline classes.

REAL = ("MessageQueue", "NNData", "ImgFrame", "Clock", "TensorInfo", "OpenVINO", "NNArchive", "DeviceInfo",
        "XLinkDeviceState", "XLinkError_t", "XLinkProtocol", "XLinkPlatform", "CameraBoardSocket",
        "ImgResizeMode", "UsbSpeed")


def device_info(state: str = "X_LINK_UNBOOTED", status: str = "X_LINK_SUCCESS", device_id: str = "14442C10D13EABCE00",
                name: str = "1.3"):
    """depthai's real DeviceInfo, as XLink reports an OAK in ``state``."""
    import depthai as dai

    return dai.DeviceInfo(name, device_id, getattr(dai.XLinkDeviceState, state), dai.XLinkProtocol.X_LINK_USB_VSC,
                          dai.XLinkPlatform.X_LINK_MYRIAD_X, getattr(dai.XLinkError_t, status))


class StandInOak:
    """An autospecced depthai whose Pipeline 'runs' a network on a thread, over real depthai queues.

    ``network(bgr) -> {name: array}`` is what the blob computes; ``camera`` the frames its camera
    sees. ``disconnect_after`` closes every queue after that many results, as depthai does when the
    device is lost; ``stall_after`` stops sending without closing anything; ``stop_after`` stops
    the pipeline (``isRunning()`` False) with its queues open.
    """

    def __init__(self, network, camera=(), infos=None, disconnect_after=None, stall_after=None, stop_after=None):
        from unittest import mock

        import depthai as dai

        self.dai = dai
        self.network, self.camera = network, list(camera)
        self.disconnect_after, self.stall_after, self.stop_after = disconnect_after, stall_after, stop_after
        self.fake = fake = mock.create_autospec(dai)
        for name in REAL:
            setattr(fake, name, getattr(dai, name))
        fake.XLinkConnection.getAllConnectedDevices.return_value = [device_info()] if infos is None else infos
        self.results = dai.MessageQueue("nn.out", 4, True)  # blocking: the thread waits for the reader
        self.passthrough = dai.MessageQueue("nn.passthrough", 4, True)
        self.inputs = dai.MessageQueue("nn.input", 2, True)
        self.nn = self._nn()
        self.camera_node = mock.create_autospec(dai.node.Camera, instance=True)
        self.camera_node.build.return_value = self.camera_node
        self.camera_node.requestOutput.return_value = mock.create_autospec(dai.Node.Output, instance=True)
        self.pipeline = fake.Pipeline.return_value
        self.pipeline.create.side_effect = lambda kind: {fake.node.NeuralNetwork: self.nn,
                                                         fake.node.Camera: self.camera_node}[kind]
        self.running = False
        self.pipeline.isRunning.side_effect = lambda: self.running
        self.pipeline.start.side_effect = self._start
        self.pipeline.stop.side_effect = self._stop
        self.sent: list = []

    def _nn(self):
        from unittest import mock

        nn = mock.create_autospec(self.dai.node.NeuralNetwork, instance=True)
        nn.out = mock.create_autospec(self.dai.Node.Output, instance=True)
        nn.passthrough = mock.create_autospec(self.dai.Node.Output, instance=True)
        nn.input = mock.create_autospec(self.dai.Node.Input, instance=True)
        nn.out.createOutputQueue.return_value = self.results
        nn.passthrough.createOutputQueue.return_value = self.passthrough
        nn.input.createInputQueue.return_value = self.inputs
        return nn

    def _start(self):
        import threading

        self.running = True
        self.thread = threading.Thread(target=self._device, daemon=True)
        self.thread.start()

    def _stop(self):
        self.running = False
        for queue in (self.results, self.passthrough, self.inputs):
            queue.close()

    def _device(self):
        """The OAK's side: camera frames (or host-sent ones) through the network."""
        import time

        dai = self.dai
        try:
            count = 0
            while self.running:
                if count == self.disconnect_after:
                    while self.results.getSize():  # the host reads what was sent before the cable went
                        time.sleep(0.01)
                    self._stop()  # what depthai does when a node throws on a lost device
                    return
                if count == self.stall_after:
                    return
                if count == self.stop_after:
                    self.running = False  # a node stopped the pipeline; its queues stay open
                    return
                if self.nn.input.createInputQueue.called:
                    frame = self.inputs.get()
                    self.sent.append(frame)
                else:
                    if count >= len(self.camera):
                        return
                    frame = dai.ImgFrame()
                    frame.setCvFrame(self.camera[count], dai.ImgFrame.Type.BGR888p)
                    frame.setSequenceNum(count)
                    frame.setTimestamp(dai.Clock.now())
                result = dai.NNData()
                for name, array in self.network(frame.getCvFrame()).items():
                    result.addTensor(name, array.astype("float16"), dai.TensorInfo.DataType.FP16)
                result.setSequenceNum(frame.getSequenceNum())
                result.setTimestamp(frame.getTimestamp())
                if not self.nn.input.createInputQueue.called:
                    self.passthrough.send(frame)
                self.results.send(result)
                count += 1
        except dai.MessageQueue.QueueException:
            return  # the host stopped the pipeline
