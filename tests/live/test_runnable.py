"""An export folder and an NN Archive open through one function into one typed shape."""

import json

import pytest

from oakpipe.errors import UserError
from oakpipe.live.export_check import open_for_run
from oakpipe.live.runnable import RunnableExport
from oakpipe.manifest_schema import ExportManifest
from oakpipe.preprocessing import Preprocessing
from tests.live.test_archive_input import halve_blob_archive


def test_the_manifest_reads_as_types_with_the_same_keys_on_disk(halve_dir):
    data = json.loads((halve_dir / "manifest.json").read_text())
    record = ExportManifest.from_dict(data)
    assert record.schema == data["schema"] == 1
    assert record.name == data["model"]["name"] == "halve"
    assert record.input_shape == tuple(data["options"]["input_shape"])
    assert record.preprocessing == Preprocessing.from_dict(data["preprocessing"])
    assert record.blob is not None
    assert record.blob.output_names == [p["name"] for p in data["stages"]["blob"]["info"]["blob"]["outputs"]]
    assert record.artifacts("blob") == data["stages"]["blob"]["artifacts"]
    assert record.verified is data["verified"]


def test_a_malformed_manifest_is_one_user_error():
    with pytest.raises(UserError, match="manifest.json is corrupt"):
        ExportManifest.from_dict({"schema": 1, "options": {"input_shape": ["a"]}, "stages": {}})


def test_an_export_folder_and_an_nn_archive_open_as_the_same_runnable(halve_dir, tmp_path):
    folder = open_for_run(halve_dir)
    archive = open_for_run(halve_blob_archive(halve_dir, tmp_path))
    for runnable in (folder, archive):
        assert isinstance(runnable, RunnableExport)
        assert isinstance(runnable.export.record, ExportManifest)
        assert runnable.export.blob.is_file() and (runnable.width, runnable.height) == (256, 256)
    assert folder.export.record.blob.output_names == archive.export.record.blob.output_names
    own = open_for_run(next(halve_dir.glob("*.tar.xz")))  # our own archive runs as its export folder
    assert own.export.folder == halve_dir and own.export.record.kind == "builtin"


def test_the_rolling_rate_keeps_its_window_and_counts_intervals():
    from oakpipe.live.result import FPS_WINDOW, rolling_fps

    times: list[float] = []
    assert rolling_fps(times, 0.0) == 0.0  # one frame: no interval yet
    for i in range(1, 100):
        rate = rolling_fps(times, i * 0.05)  # 20 frames a second
    assert len(times) == FPS_WINDOW
    # (30 - 1) intervals of 0.05 s: float sums of 0.05 are exact to ~1e-15
    assert rate == pytest.approx(20.0, rel=1e-9) and rolling_fps(times) == rate
