"""Untrusted NN Archives: only the members config.json names are read, under size caps.

Each hostile archive is a few KiB on disk. The caps are oakpipe's real ones except where
a test needs a member larger than the cap: it lowers the cap rather than write gigabytes.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from pathlib import Path

import pytest

from oakpipe.cli import main
from oakpipe.errors import UserError
from oakpipe.live import RunOptions, archive_input, run_export
from oakpipe.live.archive_input import ArchiveModel, open_archive, read_config
from tests.live.test_archive_input import IMAGENET_RGB, SIZE, config, tiny_onnx, write_archive  # noqa: F401

HOST = dict(backend="host", display="none")


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    """oakpipe's temporary folders go here, so a test can see everything an archive wrote."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def written(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def add(tar: tarfile.TarFile, name: str, data: bytes = b"", **fields) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in fields.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if data else None)


def refused(path: Path, capsys) -> str:
    """Run the archive from the command line: exit 2, one line, no traceback; -> that line."""
    assert main(["run", str(path), "--backend", "host", "--display", "none", "--frames", "1"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("oakpipe:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_member_declared_larger_than_any_model_is_refused_from_its_header(tmp_path, scratch, capsys):
    """3 GiB declared, 4 KiB on disk: refused before a byte of it is decompressed."""
    path = tmp_path / "bomb.tar.xz"
    with tarfile.open(path, "w:xz") as tar:
        add(tar, "config.json", json.dumps(config("m.onnx", [1, 3, 8, 8], {}, ["o"])).encode())
        info = tarfile.TarInfo("m.onnx")
        info.size = 3 << 30
        tar.fileobj.write(info.tobuf())  # the header alone: the data would be 3 GiB of zeros
    line = refused(path, capsys)
    assert "member m.onnx is 3.0 GiB, more than the 2.0 GiB a model may be" in line
    assert written(scratch) == {}


def test_zeros_that_expand_past_the_cap_are_not_written(tmp_path, scratch, monkeypatch, capsys):
    path = write_archive(tmp_path / "zeros.tar.xz", config("m.onnx", [1, 3, 8, 8], {}, ["o"]),
                         {"m.onnx": bytes(4 << 20)})
    assert path.stat().st_size < 4096  # 4 MiB of zeros compress to almost nothing
    monkeypatch.setattr(archive_input, "MAX_MODEL_BYTES", 1 << 20)
    assert "member m.onnx is 4.0 MiB, more than the 1.0 MiB a model may be" in refused(path, capsys)
    assert written(scratch) == {}


def test_a_huge_config_is_refused_unparsed(tmp_path, capsys):
    path = tmp_path / "big-config.tar.xz"
    with tarfile.open(path, "w:xz") as tar:
        add(tar, "config.json", b"[" * (8 << 20))  # parsing this would recurse 8 million levels
    assert "config.json is 8.0 MiB, more than the 1.0 MiB a config may be" in refused(path, capsys)


@pytest.mark.parametrize(("kind", "fields"), [("symlink", {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}),
                                              ("hard link", {"type": tarfile.LNKTYPE, "linkname": "config.json"})])
def test_a_link_member_is_refused(tmp_path, scratch, capsys, kind, fields):
    path = tmp_path / "link.tar.xz"
    with tarfile.open(path, "w:xz") as tar:
        add(tar, "config.json", json.dumps(config("m.onnx", [1, 3, 8, 8], {}, ["o"])).encode())
        add(tar, "m.onnx", **fields)
    line = refused(path, capsys)
    assert "member m.onnx is a link" in line and fields["linkname"] in line, kind
    assert written(scratch) == {}


def test_a_device_member_is_refused(tmp_path, capsys):
    path = tmp_path / "dev.tar.xz"
    with tarfile.open(path, "w:xz") as tar:
        add(tar, "config.json", json.dumps(config("m.onnx", [1, 3, 8, 8], {}, ["o"])).encode())
        add(tar, "m.onnx", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
    assert "member m.onnx is not a regular file" in refused(path, capsys)


@pytest.mark.parametrize("name", ["../escape.onnx", "a/../../escape.onnx", "/tmp/escape.onnx"])
def test_a_member_outside_the_archive_is_refused_as_bad_input(tmp_path, scratch, capsys, name):
    path = write_archive(tmp_path / "trav.tar.xz", config("m.onnx", [1, 3, 8, 8], {}, ["o"]),
                         {"m.onnx": b"x", name: b"escaped"})
    assert "points outside the archive" in refused(path, capsys)
    assert written(scratch) == {} and not (tmp_path / "escape.onnx").exists()


def test_a_config_naming_a_path_outside_the_archive_is_refused(tmp_path, capsys):
    path = write_archive(tmp_path / "cfg.tar.xz", config("../../etc/passwd", [1, 3, 8, 8], {}, ["o"]), {})
    assert "'../../etc/passwd' points outside the archive" in refused(path, capsys)


def test_only_the_named_model_is_written(tiny_onnx, tmp_path, scratch):  # noqa: F811
    path = write_archive(tmp_path / "extra.tar.xz", config("tiny.onnx", [1, 3, SIZE, SIZE], IMAGENET_RGB, ["out"]),
                         {"tiny.onnx": tiny_onnx[1], "extra.bin": bytes(1 << 20), "notes/x.blob": b"blob"})
    summary = run_export(path, RunOptions(frames=1, **HOST))
    assert summary.frames == 1
    names = {Path(name).name for name in written(scratch)}
    assert "tiny.onnx" in names and "extra.bin" not in names and "x.blob" not in names, names


def test_a_superblob_named_by_the_config_is_extracted_like_a_blob(tmp_path, scratch):
    payload = b"superblob bytes " * 64
    path = write_archive(tmp_path / "sb.tar.xz", config("m.superblob", [1, 3, 8, 8], {}, ["out"]),
                         {"m.superblob": payload, "other.blob": b"not named"})
    model = ArchiveModel(path, *read_config(path))
    assert model.blob.read_bytes() == payload and model.blob.suffix == ".superblob"
    assert model.record.blob is not None and model.record.blob.output_names == ["out"]
    assert {Path(name).name for name in written(scratch)} == {"m.superblob"}


def test_an_xml_brings_its_bin(tmp_path, scratch):
    path = write_archive(tmp_path / "ir.tar.xz", config("net/m.xml", [1, 3, 8, 8], {}, ["o"]),
                         {"net/m.xml": b"<net/>"})
    with pytest.raises(UserError, match="names net/m.bin but the archive does not hold it"):
        open_archive(path)


def test_an_archive_of_many_members_is_refused(tmp_path, monkeypatch, capsys):
    path = write_archive(tmp_path / "many.tar.xz", config("m.onnx", [1, 3, 8, 8], {}, ["o"]),
                         {f"f{i}": b"" for i in range(10)})
    monkeypatch.setattr(archive_input, "MAX_MEMBERS", 5)
    assert "holds more than 5 members" in refused(path, capsys)


@pytest.mark.parametrize(("cfg", "phrase"), [
    (config("m.onnx", [1, 3, 100000, 100000], {}, ["o"]), "the input is 100000x100000"),
    (config("m.onnx", [1, 3, "tall", 8], {}, ["o"]), "config.json is malformed"),
    (config("m.onnx", [1, 3, 8, 8], {"mean": ["a", "b", "c"]}, ["o"]), "config.json is malformed"),
    (config("m.onnx", [1, 3, 8, 8], {}, ["o"]) | {"model": {"metadata": {"name": "m", "path": "m.onnx"},
                                                            "inputs": ["not an object"], "outputs": ["o"]}},
     "config.json lacks model.inputs.0.shape"),
])
def test_a_malformed_config_is_bad_input(tmp_path, capsys, cfg, phrase):
    path = write_archive(tmp_path / "cfg.tar.xz", cfg, {"m.onnx": b"x"})
    assert phrase in refused(path, capsys)
