"""An export whose verification did not finish, or failed, runs with one warning line saying so."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from oakpipe.cli import main

UNSET = object()


@pytest.mark.parametrize(("verified", "phrase"), [
    (None, "is not verified (verification was skipped or did not finish) -> to verify it: oakpipe verify"),
    (UNSET, "is not verified (verification was skipped or did not finish) -> to verify it: oakpipe verify"),
    (False, "FAILED verification"),
    (True, None),
], ids=["null", "missing", "failed", "passed"])
def test_run_warns_once_unless_verified(halve_dir, tmp_path, caplog, verified, phrase):
    folder = with_verified(halve_dir, tmp_path, verified)
    assert main(["--quiet", "run", str(folder), "--backend", "host", "--display", "none", "--frames", "2"]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    if phrase is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and phrase in warnings[0] and str(folder) in warnings[0], warnings


def test_the_warning_is_one_line_on_stderr(halve_dir, tmp_path):
    folder = with_verified(halve_dir, tmp_path, None)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]), DEPTHAI_TELEMETRY="0")
    done = subprocess.run([sys.executable, "-m", "oakpipe", "--quiet", "run", str(folder), "--backend", "host",
                           "--display", "none", "--frames", "2"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [f"oakpipe: WARNING: {folder} is not verified (verification was skipped or "
                                        f"did not finish) -> to verify it: oakpipe verify {folder}"]


def with_verified(halve_dir: Path, tmp_path: Path, verified) -> Path:
    """A copy of the halve export whose manifest says ``verified`` (UNSET: says nothing)."""
    folder = tmp_path / "halve"
    shutil.copytree(halve_dir, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["verified"] is True  # the session's export was verified; each case undoes that
    if verified is UNSET:
        del manifest["verified"]
    else:
        manifest["verified"] = verified
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_convert_without_verify_says_the_export_is_not_verified(halve_dir, tmp_path, capsys):
    folder = tmp_path / "halve"
    shutil.copytree(halve_dir, folder)
    assert main(["--quiet", "convert", "halve", "--out", str(folder), "--no-verify"]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert notes == [f"note: {folder} is not verified (verification was skipped or did not finish) -> "
                     f"to verify it: oakpipe verify {folder}"]
    assert json.loads((folder / "manifest.json").read_text())["verified"] is None
