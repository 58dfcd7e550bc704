"""The host backend end to end: generated video -> halve IR -> decoded frames, files, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from oakpipe.errors import UserError
from oakpipe.live import RunOptions, run_export
from oakpipe.live.sources import open_source, sample_frame
from tests.live.conftest import write_video

HOST = dict(backend="host", display="none")


def count_video_frames(path: Path) -> int:
    capture, count = cv2.VideoCapture(str(path)), 0
    while capture.read()[0]:
        count += 1
    return count


def test_halve_on_a_video_halves_every_frame(halve_dir, video, tmp_path):
    path, decoded = video
    seen = []
    record, frames_dir = tmp_path / "out.mp4", tmp_path / "frames"
    options = RunOptions(source=str(path), record=record, save_frames=frames_dir, strip=tmp_path / "s.png", **HOST)
    summary = run_export(halve_dir, options, on_frame=lambda item, picture: seen.append((item, picture)))

    assert summary.frames == len(decoded) == len(seen) == 12
    assert [item.index for item, _ in seen] == list(range(12))
    for (item, picture), source in zip(seen, decoded):
        # what the camera would send: the source fitted like the preview (checks frame order too)
        expected_frame = cv2.resize(source[:, 20:140], (256, 256), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(item.frame, expected_frame)
        # halve in FP16: 0.5 * x is exact in FP16 up to its 11-bit mantissa (< 0.07 LSB at 255),
        # then rounded to U8, where odd values land on .5 and may round either way: 1 LSB.
        np.testing.assert_allclose(picture.astype(np.float32), item.frame.astype(np.float32) / 2, atol=1.0)
    assert count_video_frames(record) == 12
    assert len(list(frames_dir.glob("*.png"))) == 12
    saved = cv2.imread(str(frames_dir / "frame_000003.png"))
    np.testing.assert_array_equal(saved, np.concatenate([seen[3][0].frame, seen[3][1]], axis=1))
    assert cv2.imread(str(tmp_path / "s.png")).shape == (4 * (256 + 4), 512, 3)
    assert len(summary.stage_ms["inference"]) == 12 and summary.mean_fps > 0 and summary.mean_latency_ms > 0


def test_sample_scene_is_not_flat_and_is_deterministic():
    first, later = sample_frame(0), sample_frame(20)
    assert first.shape == (480, 640, 3) and first.dtype == np.uint8
    assert all(first[..., c].std() > 20 for c in range(3))  # coloured gradients, not a flat colour
    assert np.abs(first.astype(int) - later).mean() > 5  # it moves
    np.testing.assert_array_equal(sample_frame(7), sample_frame(7))
    from oakpipe.live.sources import sample_size

    assert sample_size(256, 256) == (341, 256) and sample_size(640, 360) == (640, 480)
    small = sample_frame(3, (341, 256))
    assert small.shape == (256, 341, 3) and all(small[..., c].std() > 20 for c in range(3))


def test_sample_through_halve_is_not_flat(halve_dir):
    pictures = []
    summary = run_export(halve_dir, RunOptions(source="sample", frames=3, **HOST),
                         on_frame=lambda item, picture: pictures.append(picture))
    assert summary.frames == 3 and summary.shows == "output as image"
    assert all(p.std() > 10 for p in pictures)


def test_image_repeated_and_image_folder(halve_dir, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), sample_frame(i))
    (folder / "notes.txt").write_text("not an image")
    assert run_export(halve_dir, RunOptions(source=str(folder), **HOST)).frames == 3
    assert run_export(halve_dir, RunOptions(source=str(folder / "1.png"), frames=4, **HOST)).frames == 4


@pytest.mark.parametrize("kind", ["empty folder", "not a video", "missing", "no camera", "bad image"])
def test_bad_sources_are_user_errors(kind, tmp_path):
    if kind == "empty folder":
        spec, phrase = tmp_path, "holds no images"
    elif kind == "not a video":
        (tmp_path / "x.mp4").write_bytes(b"this is not an mp4")
        spec, phrase = tmp_path / "x.mp4", "cannot decode"
    elif kind == "missing":
        spec, phrase = tmp_path / "nope.mp4", "no such file"
    elif kind == "no camera":
        spec, phrase = "57", "no camera at index 57"
    else:
        (tmp_path / "x.png").write_bytes(b"garbage")
        spec, phrase = tmp_path / "x.png", "cannot be read as an image"
    with pytest.raises(UserError, match=phrase):
        open_source(str(spec))


def test_output_paths_are_checked_before_any_work(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        RunOptions(record=tmp_path / "missing" / "out.mp4")
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(UserError, match="is a folder"):
        RunOptions(record=tmp_path / "dir.mp4")
    (tmp_path / "plain").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        RunOptions(record=tmp_path / "plain" / "out.mp4")
    with pytest.raises(UserError, match=".mp4"):
        RunOptions(record=tmp_path / "out.avi")
    with pytest.raises(UserError, match="does not exist"):
        RunOptions(strip=tmp_path / "missing" / "s.png")
    with pytest.raises(UserError, match="does not exist"):
        RunOptions(save_frames=tmp_path / "a" / "b")
    with pytest.raises(UserError, match="is a folder") as caught:
        RunOptions(results=tmp_path)
    assert caught.value.hint is not None and caught.value.hint.endswith("results.jsonl")  # the option's own kind


def test_a_folder_that_takes_no_files_is_named_not_called_missing(tmp_path):
    import errno

    from oakpipe.live.files import write_error

    said = write_error("--results", tmp_path / "r.jsonl", OSError(errno.ENOENT, "No such file or directory"))
    assert "takes no new files" in said.message and "mkdir" not in (said.hint or "")
    gone = write_error("--results", tmp_path / "gone" / "r.jsonl", OSError(errno.ENOENT, "No such file or directory"))
    assert "does not exist" in gone.message


def test_a_video_shorter_than_frames_ends_cleanly(halve_dir, tmp_path):
    path = tmp_path / "short.mp4"
    write_video(path, 5)
    summary = run_export(halve_dir, RunOptions(source=str(path), frames=50, record=tmp_path / "r.mp4", **HOST))
    assert summary.frames == 5 and summary.stopped_by == "source ended or --frames reached"
    assert count_video_frames(tmp_path / "r.mp4") == 5


def test_interrupt_closes_files(halve_dir, tmp_path):
    """Ctrl-C mid-run: a summary, and a recording that plays to the frames shown."""
    def interrupt(item, picture):
        if item.index == 4:
            raise KeyboardInterrupt

    record = tmp_path / "r.mp4"
    summary = run_export(halve_dir, RunOptions(source="sample", frames=40, record=record, **HOST), on_frame=interrupt)
    assert summary.stopped_by.startswith("interrupted") and summary.frames == 4
    assert count_video_frames(record) == 4


def test_window_on_headless_opencv_says_how_to_get_one(halve_dir, monkeypatch):
    monkeypatch.setattr("oakpipe.live.display.gui_available", lambda: False)
    with pytest.raises(UserError) as error:
        run_export(halve_dir, RunOptions(backend="host", display="window", frames=1))
    assert "no GUI" in error.value.one_line() and "pip install opencv-python" in error.value.one_line()


def copy_export(halve_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "copy"
    shutil.copytree(halve_dir, folder)
    return folder


def test_export_missing_files(halve_dir, tmp_path):
    with pytest.raises(UserError, match="no such export folder"):
        run_export(tmp_path / "nothing", RunOptions(**HOST))
    folder = copy_export(halve_dir, tmp_path)
    next(folder.glob("*.blob")).unlink()
    with pytest.raises(UserError, match="missing or changed"):
        run_export(folder, RunOptions(**HOST))


def test_archive_whose_blob_differs_is_refused(halve_dir, tmp_path):
    import json

    from oakpipe.manifest import sha256_file
    from oakpipe.stages.archive import build_archive

    folder = copy_export(halve_dir, tmp_path)
    blob = next(folder.glob("*.blob"))
    other = tmp_path / blob.name
    other.write_bytes(blob.read_bytes() + b"\0")
    archive = next(folder.glob("*.tar.xz"))
    build_archive("halve", other, __import__("oakpipe.blobfile").blobfile.read_blob(blob), archive)
    manifest = json.loads((folder / "manifest.json").read_text())  # consistent manifest, inconsistent parts
    manifest["stages"]["archive"]["artifacts"][archive.name] = sha256_file(archive)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="differs from"):
        run_export(folder, RunOptions(**HOST))


def test_blob_and_ir_sizes_must_agree(halve_dir, monkeypatch):
    from oakpipe.blobfile import BlobInfo, BlobPort
    from oakpipe.live.export_check import open_for_run

    fake = BlobInfo("VERSION_2021_4", 6, 6, 1, [BlobPort("input", [320, 240, 3, 1], "U8F")], [])
    monkeypatch.setattr("oakpipe.blobfile.read_blob", lambda path: fake)
    with pytest.raises(UserError) as error:
        open_for_run(halve_dir)
    assert "takes 320x240 frames" in error.value.one_line() and "1,3,240,320" in error.value.one_line()
