"""The device backend without a device: decoding NNData, pairing, the loop on a stand-in
depthai module; and one real-camera test (``oak``) that runs only with an OAK attached."""

from __future__ import annotations

import math
from pathlib import Path
from unittest import mock

import depthai as dai
import numpy as np
import pytest

from oakpipe.convert import Export
from oakpipe.errors import DeviceError
from oakpipe.live import RunOptions, run_export
from oakpipe.live.decode import decode_outputs, nn_data_to_outputs
from oakpipe.live.device import SequencePairer, device_inferred
from oakpipe.live.export_check import RunnableExport
from oakpipe.live.sources import sample_frame
from oakpipe.preprocessing import Preprocessing

PRE = Preprocessing()
W, H = 64, 48


def fake_runnable(tmp_path: Path) -> RunnableExport:
    manifest = {"model": {"name": "fake"},
                "stages": {"blob": {"artifacts": {"fake.blob": ""}, "info": {"blob": {"outputs": [{"name": "output"}]}}}}}
    return RunnableExport(Export(tmp_path, manifest), PRE, W, H)


def nn_data(seq: int, array: np.ndarray, name: str = "output") -> dai.NNData:
    message = dai.NNData()
    message.addTensor(name, array.astype(np.float16), dai.TensorInfo.DataType.FP16)
    message.setSequenceNum(seq)
    return message


def img_frame(seq: int, bgr: np.ndarray) -> dai.ImgFrame:
    frame = dai.ImgFrame()
    frame.setCvFrame(bgr, dai.ImgFrame.Type.BGR888p)
    frame.setSequenceNum(seq)
    return frame


def camera_frames(count: int) -> list[np.ndarray]:
    import cv2

    return [cv2.resize(sample_frame(i), (W, H), interpolation=cv2.INTER_AREA) for i in range(count)]


def halved(bgr: np.ndarray) -> np.ndarray:
    """What halve's blob would output for a camera frame: RGB in [0, 1], halved, NCHW."""
    return (bgr[..., ::-1].astype(np.float32) / 255 * 0.5).transpose(2, 0, 1)[None]


def test_real_nndata_decodes_to_shaped_float32():
    array = np.linspace(0, 1, 2 * 3 * 4).reshape(1, 2, 3, 4)
    outputs = nn_data_to_outputs(nn_data(0, array), ["output"])
    assert list(outputs) == ["output"] and outputs["output"].dtype == np.float32
    np.testing.assert_allclose(outputs["output"], array, atol=1e-3)  # FP16 on the wire


def test_mock_nndata_keeps_the_blob_output_order():
    message = mock.Mock()
    message.getAllLayerNames.return_value = ["b", "a"]
    message.getTensor.side_effect = lambda name, dequantize=False: np.full((1, 2), ord(name), np.float16)
    outputs = nn_data_to_outputs(message, ["a", "b"])
    assert list(outputs) == ["a", "b"] and outputs["a"].dtype == np.float32 and outputs["b"][0, 0] == ord("b")


@pytest.mark.parametrize(("outputs", "shows"), [
    ({"output": np.zeros((1, 3, H, W))}, "output as image"),
    ({"depth": np.zeros((1, 1, H, W))}, "depth as image"),
    ({"seg": np.random.rand(1, 21, H // 2, W // 2)}, "seg as heat map"),
    ({"logits": np.random.rand(1, 1000)}, "values"),
    ({"scores": np.random.rand(1, 10), "mask": np.ones((1, 3, H, W))}, "mask as image"),
    ({"a": np.random.rand(1, 7, 5, 5), "b": np.random.rand(2)}, "values"),
    ({"scalar": np.float32(3.0), "empty": np.zeros((0,)), "nan": np.full((1, 4), np.nan)}, "values"),
])
def test_any_output_decodes_to_a_picture(outputs, shows):
    picture, what = decode_outputs(outputs, PRE, (W, H))
    assert what == shows and picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3


def test_halve_like_output_decodes_to_a_dimmer_copy():
    frame = camera_frames(1)[0]
    picture, _ = decode_outputs({"output": halved(frame)}, PRE, (W, H))
    np.testing.assert_allclose(picture.astype(float), frame / 2, atol=1.0)


def test_pairer_matches_by_sequence_number_and_drops_stale():
    pairer, frames = SequencePairer(), [mock.Mock(**{"getSequenceNum.return_value": i}) for i in range(4)]
    results = [mock.Mock(**{"getSequenceNum.return_value": i}) for i in range(4)]
    assert pairer.add(frame=frames[0]) == []
    assert pairer.add(result=results[1]) == []  # its frame was dropped by the queue
    assert pairer.add(frame=frames[2]) == []
    assert pairer.add(result=results[2]) == [(frames[2], results[2])]
    assert pairer.frames == {} and pairer.results == {}  # frame 0 and result 1 forgotten


def fake_depthai(messages: int, devices: list | None = None) -> mock.MagicMock:
    """A stand-in depthai: camera and NN nodes whose queues replay halve's results."""
    fake = mock.MagicMock()
    fake.Device.getAllAvailableDevices.return_value = ["fake-oak"] if devices is None else devices
    fake.Clock = dai.Clock
    pipeline = fake.Pipeline.return_value
    camera, nn = mock.MagicMock(), mock.MagicMock()
    pipeline.create.side_effect = lambda kind: camera if kind is fake.node.Camera else nn
    bgr = camera_frames(messages)
    nn.out.createOutputQueue.return_value.get.side_effect = [nn_data(i, halved(f)) for i, f in enumerate(bgr)]
    nn.passthrough.createOutputQueue.return_value.tryGet.side_effect = [img_frame(i, f) for i, f in enumerate(bgr)]
    pipeline.isRunning.return_value = True
    fake.frames, fake.camera, fake.nn = bgr, camera.build.return_value, nn
    return fake


def test_device_loop_on_a_stand_in_depthai(tmp_path):
    fake = fake_depthai(5)
    items = list(device_inferred(fake_runnable(tmp_path), fps=None, limit=5, dai=fake))
    assert [i.index for i in items] == list(range(5))
    fake.camera.requestOutput.assert_called_once_with((W, H), fake.ImgFrame.Type.BGR888p, fake.ImgResizeMode.CROP, None)
    fake.nn.setBlobPath.assert_called_once_with(str(tmp_path / "fake.blob"))
    fake.Pipeline.return_value.start.assert_called_once()
    fake.Pipeline.return_value.stop.assert_called_once()
    for item, bgr in zip(items, fake.frames):
        np.testing.assert_array_equal(item.frame, bgr)
        assert item.outputs["output"].shape == (1, 3, H, W) and math.isnan(item.timing["inference"])


def test_run_export_on_the_stand_in_shares_decoding_and_display(tmp_path, monkeypatch):
    fake = fake_depthai(4)
    monkeypatch.setattr("oakpipe.live.device.load_depthai", lambda: fake)
    pictures = []
    summary = run_export(fake_runnable(tmp_path),
                         RunOptions(backend="device", display="none", frames=4, record=tmp_path / "r.mp4"),
                         on_frame=lambda item, picture: pictures.append((item.frame, picture)))
    assert summary.backend == "device" and summary.frames == 4 and summary.shows == "output as image"
    for frame, picture in pictures:
        np.testing.assert_allclose(picture.astype(float), frame / 2, atol=1.0)


def test_no_device_is_one_device_error(tmp_path):
    fake = fake_depthai(0, devices=[])
    with pytest.raises(DeviceError) as error:
        list(device_inferred(fake_runnable(tmp_path), None, 1, dai=fake))
    assert "no OAK camera is attached" in error.value.one_line() and "--backend host" in error.value.one_line()
    fake.Pipeline.assert_not_called()


@pytest.mark.oak
def test_halve_on_a_real_oak(halve_dir):
    """With an OAK attached: the blob on the camera halves what the camera sends."""
    seen = []
    summary = run_export(halve_dir, RunOptions(backend="device", display="none", frames=10),
                         on_frame=lambda item, picture: seen.append((item.frame, picture)))
    assert summary.frames == 10 and summary.backend == "device"
    for frame, picture in seen:
        assert frame.shape == (256, 256, 3)
        np.testing.assert_allclose(picture.astype(float), frame / 2, atol=1.0)
