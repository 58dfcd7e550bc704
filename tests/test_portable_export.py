"""An export folder made on one machine runs on another: nothing in it names the
converting machine's paths, and ``run`` looks up nothing recorded at convert time."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from oakpipe.cli import main
from oakpipe.errors import UserError
from oakpipe.portable import PACKAGE, locate_file, record_file


def strings_in(value) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return [value] if isinstance(value, str) else []


def test_copied_export_runs_with_the_original_gone(tmp_path, capsys):
    original, moved = tmp_path / "workstation" / "halve", tmp_path / "pi" / "halve"
    assert main(["--quiet", "convert", "halve", "--out", str(original), "--no-verify"]) == 0
    manifest = json.loads((original / "manifest.json").read_text())
    absolute = [s for s in strings_in(manifest) if s.startswith("/") or str(tmp_path) in s or str(Path.cwd()) in s]
    assert absolute == [], "manifest.json records paths of the converting machine"
    shutil.copytree(original, moved)
    shutil.rmtree(tmp_path / "workstation")
    capsys.readouterr()
    for target in (moved, moved / "halve.tar.xz"):
        assert main(["--quiet", "run", str(target), "--backend", "host", "--frames", "3", "--display", "none"]) == 0
        assert "oakpipe run: 3 frames" in capsys.readouterr().out
    assert main(["--quiet", "verify", str(moved)]) == 0  # a built-in re-verifies from its name alone


def test_recorded_files(tmp_path, monkeypatch):
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path / "project")  # the export folder and the photos are outside the project
    folder = tmp_path / "export"
    folder.mkdir()
    inside, outside = folder / "style.jpg", tmp_path / "photos" / "me.jpg"
    outside.parent.mkdir()
    inside.write_bytes(b"inside")
    outside.write_bytes(b"outside")
    builtin = PACKAGE / "models" / "styles" / "hubble_deep_field.jpg"

    assert record_file(inside, folder)["path"] == "style.jpg"
    assert record_file(builtin, folder)["package"] == "models/styles/hubble_deep_field.jpg"
    entry = record_file(outside, folder)
    assert set(entry) == {"name", "sha256"} and entry["name"] == "me.jpg"

    moved = tmp_path / "elsewhere"
    shutil.copytree(folder, moved)
    assert locate_file(record_file(inside, folder), moved, "style image") == moved / "style.jpg"
    assert locate_file(record_file(builtin, folder), moved, "style image") == builtin
    assert locate_file("/old/manifest/path.jpg", moved, "style image") == Path("/old/manifest/path.jpg")
    with pytest.raises(UserError, match="style image me.jpg .* recorded by name and hash only"):
        locate_file(entry, moved, "style image")
    (moved / "style.jpg").write_bytes(b"changed")  # same name, other content: not the file it was made with
    with pytest.raises(UserError, match="style image style.jpg"):
        locate_file(record_file(inside, folder), moved, "style image")


def test_a_project_relative_path(tmp_path, monkeypatch):
    """Converted inside a project: a path relative to the export folder that stays in the project."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    model = tmp_path / "models" / "net.py"
    model.write_text("# a model\n")
    entry = record_file(Path("models/net.py"), Path("exports/net"))
    assert entry["path"] == "../../models/net.py"
    (tmp_path / "exports" / "net").mkdir(parents=True)
    assert locate_file(entry, tmp_path / "exports" / "net", "model file").resolve() == model
