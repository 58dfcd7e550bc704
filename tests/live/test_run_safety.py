"""Nothing lost: signals end a run like Ctrl-C, and files are complete under their name or absent.

The signal and file-size tests run ``oakpipe run`` as a real subprocess (signals and
rlimits are per process); the full-disk test mounts a small tmpfs and is skipped where
mounting is not permitted.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

from oakpipe.errors import UserError
from oakpipe.live import RunOptions, run_export
from oakpipe.live.files import has_mp4_index
from oakpipe.live.signals import Stopped, held, stop_on_signals

ROOT = Path(__file__).resolve().parents[2]
HOST = ["--backend", "host", "--display", "none"]


def oakpipe_process(args: list[str], **kwargs) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), DEPTHAI_TELEMETRY="0")
    return subprocess.Popen([sys.executable, "-m", "oakpipe", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def decoded_frames(path: Path) -> int:
    capture, count = cv2.VideoCapture(str(path)), 0
    while capture.read()[0]:
        count += 1
    return count


def hidden_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*tmp-*"))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_mid_run_leaves_a_playable_recording_and_a_summary(halve_dir, tmp_path, signum):
    record, strip, frames = tmp_path / "run.mp4", tmp_path / "strip.png", tmp_path / "frames"
    process = oakpipe_process(["run", str(halve_dir), *HOST, "--source", "sample", "--fps", "30",
                               "--frames", "100000", "--record", str(record), "--strip", str(strip),
                               "--save-frames", str(frames)], preexec_fn=lambda: signal.signal(signum, signal.SIG_DFL))
    # the signal's default action in the child, as a shell gives it: a suite run under nohup
    # ignores SIGHUP, and oakpipe keeps an ignored signal ignored (test_nohup_keeps_sighup_ignored)
    deadline = time.monotonic() + 120
    while len(list(frames.glob("frame_*.png"))) < 10:  # the loop is running and recording
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no frames after 120 s"
        time.sleep(0.2)
    assert not record.exists()  # written under a temporary name until complete
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, err
    name = {signal.SIGTERM: "terminated (SIGTERM)", signal.SIGHUP: "hung up (SIGHUP)"}[signum]
    assert name in out and f"recorded   {record}" in out and "Traceback" not in err
    shown = int(out.split("oakpipe run: ")[1].split(" frames")[0])
    assert decoded_frames(record) == shown > 0
    assert cv2.imread(str(strip)) is not None
    assert len(list(frames.glob("frame_*.png"))) == shown
    assert hidden_leftovers(tmp_path) == []


def test_past_the_file_size_limit_the_recording_is_an_error_not_a_file(halve_dir, tmp_path):
    """cv2.VideoWriter reports no write error: the file is read back before it is named."""
    record = tmp_path / "run.mp4"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))

    process = oakpipe_process(["run", str(halve_dir), *HOST, "--frames", "40", "--record", str(record)],
                              preexec_fn=limit)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 2, err
    lines = [line for line in err.splitlines() if line.startswith("oakpipe:")]
    assert len(lines) == 1 and f"--record {record} was not written" in lines[0] and "ulimit -f" in lines[0], err
    assert "WARN" not in err  # OpenCV's per-frame "Failed to write frame" is not repeated at the user
    assert "recorded" not in out and not record.exists() and hidden_leftovers(tmp_path) == []


@pytest.fixture
def small_disk(tmp_path):
    """A 200 KiB tmpfs, or a skip where mounting is not permitted (not root, a container)."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_the_recording_and_keeps_what_fits(halve_dir, small_disk):
    record = small_disk / "run.mp4"
    with pytest.raises(UserError) as info:
        run_export(halve_dir, RunOptions(backend="host", display="none", frames=200, record=record))
    line = info.value.one_line()
    assert f"no space left on {small_disk} (tmpfs" in line and "stopped after" in line and "\n" not in line
    kept = int(line.split("stopped after ")[1].split(" frames")[0])
    assert decoded_frames(record) == kept > 0
    assert hidden_leftovers(small_disk) == []


def test_a_full_disk_while_saving_frames_names_the_disk(halve_dir, small_disk):
    with pytest.raises(UserError) as info:
        run_export(halve_dir, RunOptions(backend="host", display="none", frames=50, save_frames=small_disk / "f"))
    assert f"no space left on {small_disk} (tmpfs)" in info.value.one_line()
    assert hidden_leftovers(small_disk) == []
    for png in (small_disk / "f").glob("*.png"):  # every frame under its name is whole
        assert cv2.imread(str(png)) is not None


def test_a_strip_that_cannot_be_renamed_into_place_is_an_error(halve_dir, tmp_path):
    strip = tmp_path / "strip.png"

    def occupy(item, picture):  # the name becomes a folder after the options were checked
        strip.mkdir(exist_ok=True)

    with pytest.raises(UserError) as info:
        run_export(halve_dir, RunOptions(backend="host", display="none", frames=3, strip=strip), on_frame=occupy)
    assert f"--strip {strip} is a folder" in info.value.one_line()
    assert hidden_leftovers(tmp_path) == []


def test_an_mp4_without_its_index_is_recognised(tmp_path):
    path = tmp_path / "v.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    for i in range(5):
        writer.write(np.full((48, 64, 3), i * 40, np.uint8))
    writer.release()
    assert has_mp4_index(path)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: data.rindex(b"moov") - 4])  # what a killed writer leaves
    assert not has_mp4_index(cut)


def test_only_the_first_signal_stops_and_later_ones_wait_for_the_files():
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals():
        with pytest.raises(Stopped) as info:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises as soon as the signal is delivered
        assert info.value.signum == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGHUP)  # while the files are closed: ignored, not fatal
        time.sleep(0.1)
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_signal_during_a_frame_takes_effect_after_it():
    done = []
    with stop_on_signals(), pytest.raises(Stopped):
        with held():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
            done.append("the rest of the frame")
    assert done == ["the rest of the frame"]


def test_nohup_keeps_sighup_ignored():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with stop_on_signals():
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.1)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_the_next_run_removes_what_kill_9_left(halve_dir, tmp_path):
    record, frames = tmp_path / "run.mp4", tmp_path / "frames"
    process = oakpipe_process(["run", str(halve_dir), *HOST, "--source", "sample", "--fps", "30",
                               "--frames", "100000", "--record", str(record), "--save-frames", str(frames)])
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".run.tmp-*.mp4")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.2)
    process.kill()
    process.wait(timeout=60)
    left = hidden_leftovers(tmp_path)
    assert left and not record.exists()
    alive = tmp_path / f".run.tmp-{os.getpid()}-1.mp4"  # a run still going (this process): not touched
    alive.write_bytes(b"in progress")
    run_export(halve_dir, RunOptions(backend="host", display="none", frames=2, record=record, save_frames=frames))
    assert hidden_leftovers(tmp_path) == [alive.name] and decoded_frames(record) == 2
