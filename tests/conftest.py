"""Shared fixtures: a tiny model zoo, and the one halve export most tests read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import oakpipe  # noqa: F401  (oakpipe.privacy: telemetry off before any test imports openvino or depthai)

FIXTURES = Path(__file__).parent / "fixtures"
MODELS_FILE = FIXTURES / "models.py"


def pytest_collection_modifyitems(config, items):
    """Skip OAK tests when no camera is attached; toolchain tests when it is missing
    (unless OAKPIPE_REQUIRE_TOOLCHAIN=1, as `make test` sets: then they must run)."""
    from oakpipe import toolchain

    need_toolchain = any("toolchain" in item.keywords for item in items)
    have_toolchain = toolchain.status().installed if need_toolchain else True
    required = os.environ.get("OAKPIPE_REQUIRE_TOOLCHAIN") == "1"
    have_oak = None
    for item in items:
        if "toolchain" in item.keywords and not have_toolchain and not required:
            item.add_marker(pytest.mark.skip(reason="MyriadX toolchain not installed (make toolchain)"))
        if "oak" in item.keywords:
            if have_oak is None:
                have_oak = oak_attached()
            if not have_oak:
                item.add_marker(pytest.mark.skip(reason="no OAK device attached"))


def oak_attached() -> bool:
    try:
        from oakpipe.live.oak_devices import READY, list_oaks

        return any(oak.usable == READY for oak in list_oaks())
    except Exception:
        return False


@pytest.fixture(scope="session")
def halve_export(tmp_path_factory):
    """``oakpipe convert halve`` once per session (about 2 s)."""
    from oakpipe import ConvertOptions, convert

    out = tmp_path_factory.mktemp("exports") / "halve"
    return convert(ConvertOptions(model="halve", out=out))
