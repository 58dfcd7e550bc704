"""Platforms where the 2021.4 MyriadX compiler cannot exist (Linux aarch64, macOS arm64):
toolchain install, convert and doctor say so at once; ONNX, IR and verify still work.

The platform is faked by monkeypatching ``platform.machine()`` and ``sys.platform``,
which is all ``oakpipe.toolchain.platforms`` reads.
"""

from __future__ import annotations

import json
import platform
import sys

import pytest

from oakpipe.cli import main
from oakpipe.toolchain.platforms import ELSEWHERE_HINT, compiler_platform_problem


def fake_platform(monkeypatch, system: str, machine: str) -> None:
    monkeypatch.setattr(sys, "platform", system)
    monkeypatch.setattr(platform, "machine", lambda: machine)


@pytest.mark.parametrize("system, machine, has_compiler", [
    ("linux", "x86_64", True), ("win32", "AMD64", True), ("darwin", "x86_64", True),
    ("linux", "aarch64", False), ("darwin", "arm64", False), ("linux", "armv7l", False),
])
def test_compiler_platforms(monkeypatch, system, machine, has_compiler):
    fake_platform(monkeypatch, system, machine)
    problem = compiler_platform_problem()
    assert (problem is None) == has_compiler
    if problem:
        assert f"no wheels for {system} {machine.lower()}" in problem and "Linux x86-64" in problem


def test_toolchain_install_refuses_at_once(monkeypatch, capsys):
    import oakpipe.toolchain.install as install

    fake_platform(monkeypatch, "linux", "aarch64")

    def must_not_search(say):
        raise AssertionError("looked for a CPython 3.8/3.9 on a platform with no 2021.4 wheels")

    monkeypatch.setattr(install, "find_old_python", must_not_search)
    assert main(["toolchain", "install", "--force"]) == 5
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "no wheels for linux aarch64" in lines[0] and "x86-64 machine" in lines[0]


def test_toolchain_status_says_why(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("OAKPIPE_TOOLCHAIN_DIR", str(tmp_path / "none"))
    fake_platform(monkeypatch, "darwin", "arm64")
    assert main(["toolchain", "status"]) == 1
    out = capsys.readouterr().out
    assert "no wheels for darwin arm64" in out and ELSEWHERE_HINT in out and "install with" not in out


def test_doctor_rows(monkeypatch, tmp_path):
    from oakpipe.doctor import OK, WARN, compiler_row, platform_row

    assert platform_row().status == OK  # the tests run on x86-64
    monkeypatch.setenv("OAKPIPE_TOOLCHAIN_DIR", str(tmp_path / "none"))
    fake_platform(monkeypatch, "linux", "aarch64")
    row = platform_row()
    assert row.status == WARN and "no wheels for linux aarch64" in row.detail and row.fix == ELSEWHERE_HINT
    assert compiler_row(probe=False).status == WARN  # not a failure: nothing to fix on this machine


def test_convert_skips_the_blob_and_says_why(monkeypatch, tmp_path, capsys):
    """ONNX, device graph, IR and verify all run; the blob stage is skipped in one line,
    the manifest records why, and run refuses the folder with the same reason."""
    fake_platform(monkeypatch, "linux", "aarch64")
    out = tmp_path / "halve"
    assert main(["convert", "halve", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    skipped = [line for line in captured.err.splitlines() if "skipped" in line and "blob" in line]
    assert len(skipped) == 1 and "no wheels for linux aarch64" in skipped[0], captured.err
    for name in ("halve.onnx", "halve_device.onnx", "halve.xml", "halve.bin", "verify.json"):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.blob")) and not list(out.glob("*.tar.xz"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["verified"] is True and "no wheels for linux aarch64" in manifest["blob_skipped"]
    assert "blob" not in manifest["stages"] and "archive" not in manifest["stages"]
    verify = json.loads((out / "verify.json").read_text())
    ov2021 = [stage for stage in verify["stages"] if stage["stage"] == "ov2021"]
    assert ov2021 and all(stage["note"].startswith("skipped: no 2021.4 compiler") for stage in ov2021)
    assert main(["--quiet", "run", str(out), "--backend", "host", "--frames", "1", "--display", "none"]) == 2
    assert "has ONNX and IR but no blob" in capsys.readouterr().err
