"""``oakpipe run ARCHIVE.tar.xz``: NN Archives written the way other tools write them, and ours.

The foreign archives are built here: a config.json as Luxonis' tools write it (config_version
1.0, model.metadata.path, inputs[0] shape/layout/preprocessing, outputs, heads) with an
``.onnx`` of a tiny torch model, or with only an RVC2 blob (halve's).
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from oakpipe.errors import UserError
from oakpipe.live import RunOptions, run_export
from oakpipe.live.archive_input import open_archive
from oakpipe.live.device import device_inferred
from oakpipe.preprocessing import IMAGENET_MEAN, IMAGENET_SCALE, Preprocessing, bgr_to_planar, frame_to_model_input
from tests.live.conftest import StandInOak

HOST = dict(backend="host", display="none")
SIZE = 64


class Tiny(torch.nn.Module):
    """An image-to-image model with channel-mixing weights, so a colour-order mistake shows."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(x))


def config(model_file: str, shape: list[int], preprocessing: dict, outputs: list[str]) -> dict:
    return {"config_version": "1.0",
            "model": {"metadata": {"name": "tiny", "path": model_file, "precision": "float32"},
                      "inputs": [{"name": "images", "dtype": "float32", "input_type": "image", "shape": shape,
                                  "layout": "NCHW", "preprocessing": preprocessing}],
                      "outputs": [{"name": n, "dtype": "float32"} for n in outputs],
                      "heads": []}}


def write_archive(path: Path, cfg: dict | None, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:xz") as tar:
        items = ({"config.json": json.dumps(cfg).encode()} if cfg is not None else {}) | files
        for name, data in items.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> tuple[Tiny, bytes]:
    model = Tiny().eval()
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, SIZE, SIZE),), str(path), dynamo=False, opset_version=13,
                      input_names=["images"], output_names=["out"])
    return model, path.read_bytes()


IMAGENET_RGB = {"mean": list(IMAGENET_MEAN), "scale": list(IMAGENET_SCALE), "reverse_channels": True,
                "interleaved_to_planar": False, "dai_type": "BGR888p"}
# the same contract said the other way: the camera sends RGB, nothing is reversed
IMAGENET_RGB_FRAME = IMAGENET_RGB | {"reverse_channels": False, "dai_type": "RGB888p"}


@pytest.mark.parametrize("pre", [IMAGENET_RGB, IMAGENET_RGB_FRAME], ids=["BGR888p+reverse", "RGB888p"])
def test_foreign_onnx_archive_runs_on_the_host_like_the_torch_model(tiny_onnx, tmp_path, pre):
    model, onnx_bytes = tiny_onnx
    archive = write_archive(tmp_path / "tiny.tar.xz", config("tiny.onnx", [1, 3, SIZE, SIZE], pre, ["out"]),
                            {"tiny.onnx": onnx_bytes})
    seen = []
    summary = run_export(archive, RunOptions(frames=3, **HOST), on_frame=lambda item, picture: seen.append(item))
    assert summary.frames == 3 and summary.shows == "out as image"
    contract = Preprocessing(IMAGENET_MEAN, IMAGENET_SCALE, reverse_input_channels=True)
    for item in seen:
        assert item.frame.shape == (SIZE, SIZE, 3)
        x = frame_to_model_input(bgr_to_planar(item.frame), contract)  # oakpipe's definition of the contract
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        # both FP32 (host compiles with INFERENCE_PRECISION_HINT f32); a sigmoid output in [0, 1]:
        # 1e-4 is far above float32 rounding (~1e-6) and far below a wrong mean or a swapped channel (~1e-1)
        np.testing.assert_allclose(item.outputs["out"], expected, atol=1e-4)


def halve_blob_archive(halve_dir: Path, folder: Path) -> Path:
    blob = next(halve_dir.glob("*.blob"))
    raw = {"mean": [0, 0, 0], "scale": [1, 1, 1], "reverse_channels": False, "dai_type": "BGR888p"}
    return write_archive(folder / "halve_foreign.tar.xz", config(blob.name, [1, 3, 256, 256], raw, ["output"]),
                         {blob.name: blob.read_bytes()})


def test_blob_only_archive_on_the_host_explains_in_one_line(halve_dir, tmp_path):
    archive = halve_blob_archive(halve_dir, tmp_path)
    with pytest.raises(UserError) as info:
        run_export(archive, RunOptions(frames=1, **HOST))
    line = info.value.one_line()
    assert "only an RVC2 blob" in line and "not on the host" in line and ".onnx" in line and "\n" not in line


def test_blob_only_archive_runs_on_a_stand_in_device(halve_dir, tmp_path):
    runnable = open_archive(halve_blob_archive(halve_dir, tmp_path))
    assert (runnable.name, runnable.width, runnable.height) == ("tiny", 256, 256)
    oak = StandInOak(lambda bgr: {"output": np.zeros((1, 3, 256, 256))}, [np.zeros((256, 256, 3), np.uint8)] * 3)
    items = list(device_inferred(runnable, fps=None, limit=3, dai=oak.fake))
    assert len(items) == 3
    blob_path = Path(oak.nn.setBlobPath.call_args.args[0])
    assert blob_path.read_bytes() == next(halve_dir.glob("*.blob")).read_bytes()
    oak.camera_node.requestOutput.assert_called_once_with((256, 256), oak.dai.ImgFrame.Type.BGR888p,
                                                          oak.dai.ImgResizeMode.CROP, None)


def test_onnx_archive_on_a_device_says_it_has_no_blob(tiny_onnx, tmp_path):
    archive = write_archive(tmp_path / "t.tar.xz", config("tiny.onnx", [1, 3, SIZE, SIZE], IMAGENET_RGB, ["out"]),
                            {"tiny.onnx": tiny_onnx[1]})
    oak = StandInOak(lambda bgr: {})
    with pytest.raises(UserError, match="holds no RVC2 blob"):
        list(device_inferred(open_archive(archive), None, 1, dai=oak.fake))
    oak.fake.Pipeline.assert_not_called()  # refused before the camera is opened
    oak.fake.Device.assert_not_called()


def test_our_archive_in_its_export_folder_runs_as_the_export(halve_dir):
    summary = run_export(halve_dir / "halve.tar.xz", RunOptions(frames=2, **HOST))
    assert summary.frames == 2 and summary.shows == "output as image"


def test_our_archive_alone_opens_and_says_what_the_host_needs(halve_dir, tmp_path):
    alone = tmp_path / "halve.tar.xz"
    shutil.copy(halve_dir / "halve.tar.xz", alone)
    assert open_archive(alone).width == 256
    with pytest.raises(UserError, match="only an RVC2 blob"):
        run_export(alone, RunOptions(frames=1, **HOST))


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_bytes(b"not an archive" * 10), "not a readable NN Archive"),
    (lambda p: write_archive(p, None, {"model.onnx": b"x"}), "holds no config.json"),
    (lambda p: write_archive(p, {"config_version": "1.0", "model": {"metadata": {"name": "m", "path": "m.onnx"},
                                                                    "outputs": [{"name": "o"}]}},
                             {"m.onnx": b"x"}), "lacks model.inputs.0"),
    (lambda p: write_archive(p, config("gone.blob", [1, 3, 8, 8], {}, ["o"]), {}), "does not hold it"),
    (lambda p: write_archive(p, config("m.onnx", [1, 3, 8, 8], {"scale": [0, 1, 1]}, ["o"]), {"m.onnx": b"x"}),
     "scale value of 0"),
])
def test_bad_archives_are_one_line_errors(tmp_path, make, message):
    path = tmp_path / "bad.tar.xz"
    make(path)
    with pytest.raises(UserError) as info:
        run_export(path, RunOptions(frames=1, **HOST))
    assert message in info.value.one_line() and "\n" not in info.value.one_line()
