"""What a killed run leaves behind is cleaned up, and nothing it started outlives it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oakpipe.manifest import export_lock, temporary_sibling


def test_the_folder_lock_removes_stale_temporaries(tmp_path):
    stale = [temporary_sibling(tmp_path / "halve.onnx"), temporary_sibling(tmp_path / "halve.xml").with_suffix(".bin"),
             tmp_path / ".oakpipe-write-check-x1y2"]
    kept = [tmp_path / ".hidden", tmp_path / "notes.tmp-1-2.txt", tmp_path / "halve.onnx", tmp_path / ".halve.tmp.onnx"]
    for path in stale + kept:
        path.write_text("x")
    with export_lock(tmp_path):
        assert [p for p in stale if p.exists()] == []
    assert all(p.exists() for p in kept)


def _state(pid: int) -> str | None:
    """The process's state letter, or None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except FileNotFoundError:
        return ""


def _runs_the_worker(pid: int) -> bool:
    return any(arg.endswith("compile_worker.py") for arg in _cmdline(pid).split("\0"))


@pytest.mark.toolchain
def test_the_compile_worker_dies_with_its_parent(halve_export, tmp_path):
    """The worker is stopped (SIGSTOP) once it runs the compiler, so it cannot finish on its
    own; then its parent is killed with -9. Only the death signal can end it now."""
    script = ("import sys; from pathlib import Path; from oakpipe.toolchain import compile_onnx_to_blob; "
              "compile_onnx_to_blob(Path(sys.argv[1]), Path(sys.argv[2]), 6)")
    parent = subprocess.Popen([sys.executable, "-c", script, str(halve_export.device_onnx), str(tmp_path / "x.blob")],
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    worker = None
    deadline = time.monotonic() + 120
    while worker is None and time.monotonic() < deadline and parent.poll() is None:
        # After exec only: before it, a forked child still shows the parent's command line
        # (whose arguments name this test's tmp_path) and has no death signal set up yet.
        worker = next((c for c in _children(parent.pid) if _runs_the_worker(c)), None)
        time.sleep(0.002)
    assert worker is not None, "the compile worker never started"
    try:
        os.kill(worker, signal.SIGSTOP)  # after exec, so the death signal is already set up
        os.kill(parent.pid, signal.SIGKILL)  # kill -9: no handler, no cleanup in the parent
        parent.wait()
        deadline = time.monotonic() + 10
        while _state(worker) not in (None, "Z") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _state(worker) in (None, "Z"), f"worker {worker} outlived its killed parent"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, signal.SIGKILL)
