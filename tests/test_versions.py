"""Tool versions read from dist-info folder names agree with importlib.metadata."""

from __future__ import annotations

import sys
from importlib import metadata

import pytest

from oakpipe import versions


@pytest.fixture
def fresh_cache():
    versions._dist_info_versions.cache_clear()
    versions.version_of.cache_clear()
    yield
    versions._dist_info_versions.cache_clear()
    versions.version_of.cache_clear()


def test_every_installed_distribution_reads_as_importlib_metadata_reads_it(fresh_cache):
    names = {dist.metadata["Name"] for dist in metadata.distributions()}
    assert names >= {"torch", "onnx", "numpy"}
    assert {n: versions.version_of(n) for n in names} == {n: metadata.version(n) for n in names}


def test_the_first_folder_on_the_path_wins_and_odd_names_ask_importlib(fresh_cache, tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    for folder, version in ((first, "2.0.1"), (second, "1.0")):
        info = folder / f"demo_pkg-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: demo-pkg\nVersion: {version}\n")
    legacy = first / "legacy_pkg.egg-info"  # no version in the name: importlib reads PKG-INFO
    legacy.mkdir()
    (legacy / "PKG-INFO").write_text("Metadata-Version: 1.0\nName: legacy-pkg\nVersion: 0.3\n")
    monkeypatch.setattr(sys, "path", [str(first), str(second), *sys.path])
    assert versions.version_of("Demo.Pkg") == "2.0.1"
    assert versions.version_of("legacy-pkg") == "0.3" == metadata.version("legacy-pkg")
    assert versions.version_of("no-such-package-here") is None
