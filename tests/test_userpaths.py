"""The user's own paths fail as the user's to fix: exit 2 naming the path, never exit 70.

Read-only and full disks are real file systems: small tmpfs mounts (root and a mount
permission needed; skipped cleanly where the container forbids mount)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path

import pytest

from oakpipe.cli import main
from oakpipe.manifest import TEMPORARY_NAME
from oakpipe.userpaths import user_error_for_os

BIG_NET = '''
import torch
from torch import nn


class BigNet(nn.Module):
    """Three 3x3 convolutions, about 1 MB of FP32 weights: big enough to fill a small disk."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 160, 3, padding=1), nn.ReLU(), nn.Conv2d(160, 160, 3, padding=1),
                                  nn.ReLU(), nn.Conv2d(160, 3, 3, padding=1))

    def forward(self, x):
        return self.body(x)
'''


@contextlib.contextmanager
def tmpfs(where: Path, size: int, read_only: bool = False):
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                                 capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("no mount command here")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def convert_cli(capsys, *args: str) -> tuple[int, str]:
    code = main(["--quiet", "convert", *args])
    return code, capsys.readouterr().err


def test_out_that_is_a_file(tmp_path, capsys):
    (tmp_path / "taken").write_text("mine")
    for out in (tmp_path / "taken", tmp_path / "taken" / "sub"):
        code, err = convert_cli(capsys, "halve", "--out", str(out))
        assert code == 2 and "is a file, not a folder" in err and str(tmp_path / "taken") in err
    assert (tmp_path / "taken").read_text() == "mine"


def test_out_under_proc(capsys):
    code, err = convert_cli(capsys, "halve", "--out", "/proc/oakpipe-export")
    assert code == 2 and "/proc/oakpipe-export cannot be written" in err


def test_out_on_a_read_only_mount(tmp_path, capsys):
    with tmpfs(tmp_path / "ro", 1 << 20, read_only=True) as mount:
        code, err = convert_cli(capsys, "halve", "--out", str(mount / "export"))
    assert code == 2 and "read-only file system" in err and str(mount / "export") in err


@pytest.mark.toolchain
@pytest.mark.parametrize("failing_stage", ["onnx", "ir", "blob"])
def test_a_full_disk_is_said_at_every_stage(tmp_path, capsys, failing_stage):
    """The disk is sized to fill up during ``failing_stage``: torch's writer, OpenVINO's C++
    writer (which reports "basic_ios::clear"), the 2021.4 compiler in its subprocess."""
    (tmp_path / "bignet.py").write_text(BIG_NET)
    model = f"{tmp_path / 'bignet.py'}:BigNet"
    common = ("--input-shape", "1,3,64,64", "--no-verify")
    code, err = convert_cli(capsys, model, *common, "--out", str(tmp_path / "reference"))
    assert code == 0, err
    sizes = {p.suffix: p.stat().st_size for p in (tmp_path / "reference").iterdir()}
    onnx = (tmp_path / "reference" / "bignet.onnx").stat().st_size
    before = {"onnx": 0, "ir": 2 * onnx, "blob": 2 * onnx + sizes[".bin"] + sizes[".xml"]}[failing_stage]
    half_of_stage = {"onnx": onnx, "ir": sizes[".bin"], "blob": sizes[".blob"]}[failing_stage] // 2
    size = before + half_of_stage + 96 * 1024  # + the manifest, the lock and page rounding
    with tmpfs(tmp_path / "small", size) as mount:
        out = mount / "export"
        code, err = convert_cli(capsys, model, *common, "--out", str(out))
        left = sorted(p.name for p in out.iterdir()) if out.exists() else None
    assert code == 2, err
    if failing_stage == "onnx":  # nothing was written: the folder the convert made is gone
        assert left is None, left
        return
    assert "no space left on the device holding" in err and str(out) in err, err
    assert "internal error" not in err and "basic_ios" not in err
    assert not [name for name in left if TEMPORARY_NAME.match(name)], left  # no partial file under any name
    finished = {"onnx": [], "ir": ["bignet.onnx", "bignet_device.onnx"],
                "blob": ["bignet.bin", "bignet.onnx", "bignet.xml", "bignet_device.onnx"]}[failing_stage]
    assert [n for n in left if not n.startswith(".") and n != "manifest.json"] == finished


@pytest.mark.parametrize(("number", "expected"), [(errno.ENOSPC, "no space left"), (errno.EROFS, "read-only"),
                                                  (errno.EACCES, "permission denied"), (errno.EPERM, "permission denied"),
                                                  (errno.ENOTDIR, "is not a folder")])
def test_each_os_error_of_a_users_path_says_what_to_do(tmp_path, number, expected):
    """Permission errors cannot be made real here (tests run as root, which bypasses them)."""
    error = user_error_for_os(OSError(number, os.strerror(number), str(tmp_path / "x.onnx")), tmp_path)
    assert error is not None and error.exit_code == 2
    assert expected in error.message and str(tmp_path / "x.onnx") in error.message and error.hint
    assert user_error_for_os(OSError(errno.EIO, "I/O error")) is None  # not the user's to fix


def test_verify_names_a_missing_folder(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "no-such-export")]) == 2
    err = capsys.readouterr().err
    assert "no-such-export does not exist" in err and "unknown model" not in err


@pytest.mark.parametrize("text", ['{"schema": 1, "stag', "\xff\xfe", "[1, 2]", '{"schema": 1, "stages": {}}'])
def test_verify_names_a_corrupt_manifest(tmp_path, capsys, text):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "manifest.json").write_bytes(text.encode("latin-1"))
    assert main(["verify", str(tmp_path / "export")]) == 2
    err = capsys.readouterr().err
    assert "manifest.json is corrupt" in err and "no manifest.json" not in err


def test_verify_names_a_folder_without_manifest(tmp_path, capsys):
    (tmp_path / "export").mkdir()
    assert main(["verify", str(tmp_path / "export")]) == 2
    assert "no manifest.json" in capsys.readouterr().err



def test_a_refused_convert_leaves_no_empty_folder(tmp_path, capsys):
    """A convert refused before any stage wrote an artifact (here the model's forward cannot
    take the input shape) removes the folders it created for --out; a folder that was there
    before stays."""
    model = tmp_path / "net.py"
    model.write_text("from torch import nn\n\ndef make():\n    return nn.Linear(4, 2)\n")
    out = tmp_path / "new" / "export"
    assert main(["convert", f"{model}:make", "--input-shape", "1,3,8,8", "--out", str(out)]) == 2
    assert "forward" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    assert main(["convert", f"{model}:make", "--input-shape", "1,3,8,8", "--out", str(kept)]) == 2
    assert kept.is_dir()


def test_folders_holding_artifacts_are_kept(tmp_path):
    from oakpipe.manifest import Manifest, export_folder_kept_only_if_written

    out = tmp_path / "a" / "b"
    with pytest.raises(RuntimeError), export_folder_kept_only_if_written(out):
        out.mkdir(parents=True)
        (out / ".lock").write_text("")
        (out / "model.onnx").write_bytes(b"x")
        raise RuntimeError("a stage failed after writing its artifact")
    assert (out / "model.onnx").is_file()
    fresh = tmp_path / "c" / "d"
    with pytest.raises(RuntimeError), export_folder_kept_only_if_written(fresh):
        fresh.mkdir(parents=True)
        (fresh / ".lock").write_text("")
        Manifest.load(fresh).save()  # a manifest that records no stage
        raise RuntimeError("refused before any stage")
    assert not (tmp_path / "c").exists()


def test_a_folder_another_convert_holds_is_kept(tmp_path):
    """While another convert holds the export lock (it may be about to write), a refused
    convert leaves the folder to it."""
    import fcntl

    from oakpipe.manifest import export_folder_kept_only_if_written

    out = tmp_path / "shared"
    with pytest.raises(RuntimeError), export_folder_kept_only_if_written(out):
        out.mkdir()
        holder = open(out / ".lock", "w")  # noqa: SIM115  # the other convert's lock, held across the failure
        fcntl.flock(holder, fcntl.LOCK_EX)
        raise RuntimeError("refused before any stage")
    holder.close()
    assert out.is_dir()
