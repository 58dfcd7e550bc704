"""The device backend without a device: depthai's real messages and queues, and a stand-in OAK
made of autospecs of the installed depthai (tests/live/conftest.py), so a depthai name oakpipe
misspells fails here. The ``oak`` tests run only with an OAK attached."""

from __future__ import annotations

import math
from pathlib import Path

import depthai as dai
import numpy as np
import pytest

from oakpipe.cli import main
from oakpipe.convert import Export
from oakpipe.errors import DeviceError
from oakpipe.live import RunOptions, run_export
from oakpipe.live import device as device_module
from oakpipe.live.decode import decode_outputs, nn_data_to_outputs
from oakpipe.live.device import SequencePairer, device_inferred
from oakpipe.live.export_check import RunnableExport
from oakpipe.live.host import camera_frame
from oakpipe.live.sources import sample_frame
from oakpipe.preprocessing import Preprocessing
from tests.live.conftest import StandInOak, device_info

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


def halve_network(bgr: np.ndarray) -> dict[str, np.ndarray]:
    return {"output": halved(bgr)}


@pytest.fixture
def fast_deadlines(monkeypatch):
    """Deadlines short enough for a test (the real ones allow for a firmware boot)."""
    monkeypatch.setattr(device_module, "FIRST_RESULT_S", 1.0)
    monkeypatch.setattr(device_module, "STALL_MIN_S", 0.3)


def use(oak: StandInOak, monkeypatch) -> StandInOak:
    monkeypatch.setattr("oakpipe.live.oak_devices.load_depthai", lambda: oak.fake)
    return oak


def test_real_nndata_decodes_to_shaped_float32():
    array = np.linspace(0, 1, 2 * 3 * 4).reshape(1, 2, 3, 4)
    outputs = nn_data_to_outputs(nn_data(0, array), ["output"])
    assert list(outputs) == ["output"] and outputs["output"].dtype == np.float32
    np.testing.assert_allclose(outputs["output"], array, atol=1e-3)  # FP16 on the wire


def test_outputs_are_read_as_nchw_whatever_the_device_stored():
    nchw = np.arange(24).reshape(1, 2, 3, 4)
    message = dai.NNData()
    message.addTensor("nhwc", nchw.transpose(0, 2, 3, 1).astype(np.float16).copy(), dai.TensorInfo.StorageOrder.NHWC)
    message.addTensor("logits", np.arange(10, dtype=np.float16).reshape(1, 10), dai.TensorInfo.DataType.FP16)
    outputs = nn_data_to_outputs(message, ["logits", "nhwc"])
    assert list(outputs) == ["logits", "nhwc"]
    np.testing.assert_array_equal(outputs["nhwc"], nchw)  # small integers: exact in any dtype
    assert outputs["logits"].shape == (1, 10)  # not padded to N x C x 1 x 1


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
    np.testing.assert_allclose(picture.astype(float), frame / 2, atol=1.0)  # U8 rounding of the halved frame


def test_pairer_matches_by_sequence_number_and_drops_stale():
    bgr = camera_frames(1)[0]
    pairer = SequencePairer()
    frames = [img_frame(i, bgr) for i in range(4)]
    results = [nn_data(i, halved(bgr)) for i in range(4)]
    assert pairer.add(frame=frames[0]) == []
    assert pairer.add(result=results[1]) == []  # its frame was dropped by the queue
    assert pairer.add(frame=frames[2]) == []
    assert pairer.add(result=results[2]) == [(frames[2], results[2])]
    assert pairer.frames == {} and pairer.results == {}  # frame 0 and result 1 forgotten


def test_camera_loop_on_the_stand_in_oak(tmp_path):
    oak = StandInOak(halve_network, camera_frames(5))
    items = list(device_inferred(fake_runnable(tmp_path), fps=None, limit=5, dai=oak.fake))
    assert [i.index for i in items] == list(range(5))
    oak.camera_node.requestOutput.assert_called_once_with((W, H), dai.ImgFrame.Type.BGR888p, dai.ImgResizeMode.CROP,
                                                          None)
    oak.nn.setBlobPath.assert_called_once_with(str(tmp_path / "fake.blob"))
    oak.nn.setNumInferenceThreads.assert_called_once_with(2)
    oak.nn.input.setBlocking.assert_called_once_with(False)
    oak.nn.input.setMaxSize.assert_called_once_with(1)
    oak.fake.Device.assert_called_once()  # opened exactly the OAK that was chosen
    assert oak.fake.Device.call_args.args[0].getDeviceId() == "14442C10D13EABCE00"
    oak.pipeline.start.assert_called_once()
    oak.pipeline.stop.assert_called_once()
    for item, bgr in zip(items, oak.camera):
        np.testing.assert_array_equal(item.frame, bgr)
        assert item.outputs["output"].shape == (1, 3, H, W) and math.isnan(item.timing["inference"])
        assert 0 <= item.timing["receive"] < 60_000  # from depthai's clock; its size is the machine's


def test_run_export_on_the_stand_in_shares_decoding_and_display(tmp_path, monkeypatch):
    oak = use(StandInOak(halve_network, camera_frames(4)), monkeypatch)
    pictures = []
    summary = run_export(fake_runnable(tmp_path),
                         RunOptions(backend="device", display="none", frames=4, record=tmp_path / "r.mp4", nn_queue=3),
                         on_frame=lambda item, picture: pictures.append((item.frame, picture)))
    assert summary.backend == "device" and summary.frames == 4 and summary.shows == "output as image"
    assert "2 inference threads" in summary.source and "NN queue 3" in summary.source
    assert "receive" in summary.one_line()
    oak.nn.input.setMaxSize.assert_called_once_with(3)
    for frame, picture in pictures:
        np.testing.assert_allclose(picture.astype(float), frame / 2, atol=1.0)  # U8 rounding


def test_video_is_sent_through_the_oak_network(tmp_path, monkeypatch, video):
    """--source VIDEO with an OAK: every frame goes to the device NN; results pair with what was sent."""
    path, decoded = video
    oak = use(StandInOak(halve_network), monkeypatch)
    seen = []
    summary = run_export(fake_runnable(tmp_path), RunOptions(backend="device", display="none", source=str(path)),
                         on_frame=lambda item, picture: seen.append((item.frame, picture)))
    assert summary.frames == len(decoded) and "sent to the OAK" in summary.source
    oak.camera_node.requestOutput.assert_not_called()
    oak.nn.input.createInputQueue.assert_called_once()
    assert [m.getSequenceNum() for m in oak.sent] == list(range(len(decoded)))
    for (frame, picture), original, sent in zip(seen, decoded, oak.sent):
        expected, _ = camera_frame(original, W, H)  # resized and cropped like the camera preview
        np.testing.assert_array_equal(frame, expected)
        np.testing.assert_array_equal(sent.getCvFrame(), expected)
        np.testing.assert_allclose(picture.astype(float), frame / 2, atol=1.0)  # U8 rounding


def test_disconnect_mid_run_is_one_device_error_and_the_recording_is_finalised(tmp_path, monkeypatch, fast_deadlines):
    import cv2

    oak = use(StandInOak(halve_network, camera_frames(10), disconnect_after=3), monkeypatch)
    record = tmp_path / "r.mp4"
    with pytest.raises(DeviceError) as error:
        run_export(fake_runnable(tmp_path), RunOptions(backend="device", display="none", frames=10, record=record))
    assert error.value.exit_code == 6
    assert error.value.one_line().startswith("the OAK stopped responding")
    assert error.value.one_line().endswith("check the USB cable and power")
    oak.pipeline.stop.assert_called()
    oak.fake.Device.return_value.close.assert_called()
    assert int(cv2.VideoCapture(str(record)).get(cv2.CAP_PROP_FRAME_COUNT)) == 3  # the frames before it, playable


def test_stalled_device_is_one_device_error(tmp_path, fast_deadlines):
    oak = StandInOak(halve_network, camera_frames(10), stall_after=2)
    stream = device_inferred(fake_runnable(tmp_path), None, 10, dai=oak.fake)
    assert next(stream).index == 0 and next(stream).index == 1
    with pytest.raises(DeviceError, match=r"stopped responding \(no result in"):
        next(stream)


def test_cli_disconnect_is_exit_6_and_one_line(halve_dir, tmp_path, monkeypatch, capsys, fast_deadlines):
    use(StandInOak(lambda bgr: {"output": halved(bgr)}, camera_frames(10), disconnect_after=2), monkeypatch)
    code = main(["--quiet", "run", str(halve_dir), "--backend", "device", "--display", "none", "--frames", "10",
                 "--source", "sample", "--record", str(tmp_path / "r.mp4")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 6 and len(err) == 1 and "the OAK stopped responding" in err[0]
    assert (tmp_path / "r.mp4").is_file()


def test_no_device_is_one_device_error(tmp_path):
    oak = StandInOak(halve_network, infos=[])
    with pytest.raises(DeviceError) as error:
        list(device_inferred(fake_runnable(tmp_path), None, 1, dai=oak.fake))
    assert "no OAK camera is attached" in error.value.one_line() and "--backend host" in error.value.one_line()
    oak.fake.Pipeline.assert_not_called()


def test_busy_oak_is_named_not_missing(tmp_path):
    oak = StandInOak(halve_network, infos=[device_info("X_LINK_BOOTED")])
    with pytest.raises(DeviceError, match="in use by another program"):
        list(device_inferred(fake_runnable(tmp_path), None, 1, dai=oak.fake))
    oak.fake.Device.assert_not_called()


def test_device_option_picks_one_of_several(tmp_path):
    infos = [device_info(device_id="AAA", name="1.1"), device_info(device_id="BBB", name="1.2")]
    oak = StandInOak(halve_network, camera_frames(1), infos=infos)
    with pytest.raises(DeviceError, match="2 OAKs are attached: AAA at 1.1 .*; BBB at 1.2"):
        list(device_inferred(fake_runnable(tmp_path), None, 1, dai=oak.fake))
    settings = device_module.DeviceSettings(device="1.2")
    assert len(list(device_inferred(fake_runnable(tmp_path), None, 1, dai=oak.fake, settings=settings))) == 1
    assert oak.fake.Device.call_args.args[0].getDeviceId() == "BBB"


@pytest.mark.oak
def test_halve_on_a_real_oak(halve_dir):
    """With an OAK attached: the blob on the camera halves what the camera sends."""
    seen = []
    summary = run_export(halve_dir, RunOptions(backend="device", display="none", frames=10),
                         on_frame=lambda item, picture: seen.append((item.frame, picture)))
    assert summary.frames == 10 and summary.backend == "device"
    for frame, picture in seen:
        assert frame.shape == (256, 256, 3)
        np.testing.assert_allclose(picture.astype(float), frame / 2, atol=1.0)  # U8 rounding


@pytest.mark.oak
def test_video_through_a_real_oak(halve_dir, video):
    """With an OAK attached: recorded frames sent to the device's network come back halved, in order."""
    path, decoded = video
    seen = []
    summary = run_export(halve_dir, RunOptions(backend="device", display="none", source=str(path)),
                         on_frame=lambda item, picture: seen.append((item.frame, picture)))
    assert summary.frames == len(decoded)
    for frame, picture in seen:
        np.testing.assert_allclose(picture.astype(float), frame / 2, atol=1.0)  # U8 rounding


@pytest.mark.parametrize(("state", "status", "says"), [
    ("X_LINK_BOOTED", "X_LINK_SUCCESS", "in use by another program"),
    ("X_LINK_UNBOOTED", "X_LINK_INSUFFICIENT_PERMISSIONS", 'SUBSYSTEM=="usb", ATTRS{idVendor}=="03e7", MODE="0666"'),
    ("X_LINK_UNBOOTED", "X_LINK_COMMUNICATION_FAIL", "does not answer"),
])
def test_an_oak_that_cannot_be_used_says_why(state, status, says):
    from oakpipe.live.oak_devices import UDEV_RELOAD, choose_oak, classify

    with pytest.raises(DeviceError) as error:
        choose_oak([classify(device_info(state, status), dai)])
    assert error.value.exit_code == 6 and says in error.value.one_line()
    if "udev" in says or "SUBSYSTEM" in says:
        assert UDEV_RELOAD in error.value.one_line()


@pytest.mark.parametrize("state", ["X_LINK_UNBOOTED", "X_LINK_BOOTLOADER", "X_LINK_FLASH_BOOTED"])
def test_oaks_depthai_can_boot_are_chosen(state):
    from oakpipe.live.oak_devices import choose_oak, classify

    assert choose_oak([classify(device_info(state), dai)]).device_id == "14442C10D13EABCE00"


def test_a_device_choice_that_matches_none_lists_what_is_attached():
    from oakpipe.live.oak_devices import choose_oak, classify

    with pytest.raises(DeviceError) as error:
        choose_oak([classify(device_info(device_id="AAA", name="1.1"), dai)], "BBB")
    assert error.value.exit_code == 6 and "--device BBB matches no OAK (attached: AAA at 1.1" in error.value.one_line()
    assert choose_oak([classify(device_info(device_id="AAA", name="192.168.1.44"), dai)], "192.168.1.44").name


def write_superblob(path: Path, blob: bytes, patches: dict[int, bytes] | None = None) -> Path:
    """depthai's superblob layout: big-endian u64 blob size and 16 patch sizes, the blob, the patches.

    An empty patch means "this SHAVE count is the base blob as it is".
    """
    import struct

    patches = patches or {}
    sizes = [len(patches.get(n, b"")) for n in range(1, dai.OpenVINO.SuperBlob.NUMBER_OF_PATCHES + 1)]
    header = struct.pack(">17Q", len(blob), *sizes)
    path.write_bytes(header + blob + b"".join(patches.get(n, b"") for n in range(1, 17)))
    return path


def test_superblob_archive_runs_its_six_shave_variant(halve_dir, tmp_path, monkeypatch):
    from oakpipe.errors import UserError
    from oakpipe.live.archive_input import open_archive
    from tests.live.test_archive_input import config, write_archive

    blob = next(halve_dir.glob("*.blob"))  # compiled for 6 SHAVEs, oakpipe's default
    superblob = write_superblob(tmp_path / "halve.superblob", blob.read_bytes())
    raw = {"mean": [0, 0, 0], "scale": [1, 1, 1], "reverse_channels": False, "dai_type": "BGR888p"}
    archive = write_archive(tmp_path / "halve_super.tar.xz", config(superblob.name, [1, 3, 256, 256], raw, ["output"]),
                            {superblob.name: superblob.read_bytes()})
    oak = StandInOak(lambda bgr: {"output": halved(bgr)}, [np.zeros((256, 256, 3), np.uint8)] * 2)
    assert len(list(device_inferred(open_archive(archive), None, 2, dai=oak.fake))) == 2
    chosen = oak.nn.setBlob.call_args.args[0]
    assert isinstance(chosen, dai.OpenVINO.Blob) and chosen.numShaves == 6
    oak.nn.setBlobPath.assert_not_called()
    with pytest.raises(UserError, match="has no 8-SHAVE variant"):
        device_module.superblob_variant(dai, str(superblob), 8)
    with pytest.raises(UserError, match="not a readable superblob"):
        device_module.superblob_variant(dai, str(write_superblob(tmp_path / "bad.superblob", b"x", {3: b"nope"})))


def test_stopped_pipeline_is_one_device_error(tmp_path, fast_deadlines):
    oak = StandInOak(halve_network, camera_frames(10), stop_after=2)
    with pytest.raises(DeviceError, match=r"stopped responding \(the pipeline stopped\)"):
        list(device_inferred(fake_runnable(tmp_path), None, 10, dai=oak.fake))


def test_deadlines_scale_with_the_model_expected_speed(tmp_path):
    runnable = fake_runnable(tmp_path)
    assert device_module.expected_frame_s(runnable, None) == pytest.approx(1 / 30)
    runnable.export.manifest["stages"]["blob"]["info"]["preflight"] = {"estimates": {"estimated_fps": [0.8, 2.1]}}
    assert device_module.expected_frame_s(runnable, 30) == pytest.approx(1 / 0.8)  # adain-like: 1.25 s a frame
    deadline = device_module.Deadline(dai, None, device_module.expected_frame_s(runnable, 30))
    assert deadline.later_s == pytest.approx(12.5) and deadline.seconds == device_module.FIRST_RESULT_S


def test_usb2_link_is_warned_at_run(tmp_path, caplog):
    oak = StandInOak(halve_network, camera_frames(1))
    oak.fake.Device.return_value.getUsbSpeed.return_value = dai.UsbSpeed.HIGH
    with caplog.at_level("WARNING", logger="oakpipe"):
        list(device_inferred(fake_runnable(tmp_path), None, 1, dai=oak.fake))
    assert "USB2 (HIGH)" in caplog.text


def test_device_options_are_checked_before_any_work(halve_dir, tmp_path, monkeypatch, capsys):
    from oakpipe.errors import UserError

    with pytest.raises(UserError, match="--backend host runs on this computer"):
        RunOptions(backend="host", device="1.3")
    with pytest.raises(UserError, match="--nn-queue 0"):
        RunOptions(nn_queue=0)
    use(StandInOak(halve_network, infos=[device_info(device_id="AAA", name="1.1")]), monkeypatch)
    code = main(["--quiet", "run", str(halve_dir), "--display", "none", "--device", "BBB",
                 "--record", str(tmp_path / "r.mp4")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 6 and len(err) == 1 and "--device BBB matches no OAK (attached: AAA at 1.1" in err[0]
    assert not (tmp_path / "r.mp4").exists()  # refused before any file was opened


@pytest.mark.oak
def test_closing_a_real_oak_mid_run_is_exit_6_with_the_recording_kept(halve_dir, tmp_path, monkeypatch):
    """With an OAK attached: the device closed under the run (the nearest a test gets to pulling the
    cable) ends it with one DeviceError and a playable recording of the frames before."""
    import cv2

    from oakpipe.live import oak_devices

    opened, real_open = [], oak_devices.open_device
    monkeypatch.setattr(device_module, "open_device", lambda oak, d: opened.append(real_open(oak, d)) or opened[-1])
    record = tmp_path / "r.mp4"

    def on_frame(item, picture):
        if item.index == 4:
            opened[0].close()

    with pytest.raises(DeviceError, match="stopped responding"):
        run_export(halve_dir, RunOptions(backend="device", display="none", frames=50, record=record), on_frame=on_frame)
    assert int(cv2.VideoCapture(str(record)).get(cv2.CAP_PROP_FRAME_COUNT)) == 5


def test_a_blob_depthai_refuses_is_one_user_error_and_the_device_is_closed(tmp_path):
    from oakpipe.errors import UserError

    oak = StandInOak(halve_network, camera_frames(1))
    oak.nn.setBlobPath.side_effect = RuntimeError("Blob is not compiled for RVC2 platform\nmore")
    with pytest.raises(UserError) as error:
        list(device_inferred(fake_runnable(tmp_path), None, 1, dai=oak.fake))
    assert error.value.exit_code == 2 and "fake.blob cannot run on an OAK (RVC2): Blob is not compiled" in str(error.value)
    oak.fake.Device.return_value.close.assert_called_once()
    oak.pipeline.start.assert_not_called()
