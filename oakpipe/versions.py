"""Versions of the tools that decide an artifact, read without importing them (fast).

Every convert, cached or not, keys its stages by these versions, so reading them is on the
path of a cached convert. ``importlib.metadata`` costs more to import (~25-50 ms) than the
rest of a cached convert's bookkeeping, so the versions are read from the names of the
``NAME-VERSION.dist-info`` folders on ``sys.path`` (what pip writes), in the order
``importlib.metadata`` searches; anything else (an ``.egg-info``, an odd folder name) is
asked of ``importlib.metadata`` as before.
"""

from __future__ import annotations

import os
import re
import sys
from functools import cache

TOOLS = ("oakpipe", "torch", "onnx", "onnxslim", "onnxruntime", "openvino", "depthai", "numpy")


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


@cache
def _dist_info_versions() -> dict[str, str | None]:
    """Normalized name -> version of the first distribution of that name on sys.path; None
    where the first one found cannot be read from its folder name."""
    found: dict[str, str | None] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for folder in names:
            stem, dot, kind = folder.rpartition(".")
            if kind not in ("dist-info", "egg-info") or not dot:
                continue
            name, dash, version = stem.partition("-")
            readable = kind == "dist-info" and dash and "-" not in version
            found.setdefault(_normalized(name), version if readable else None)
    return found


@cache
def version_of(package: str) -> str | None:
    version = _dist_info_versions().get(_normalized(package))
    if version is not None:
        return version
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def tool_versions(*packages: str) -> dict[str, str | None]:
    return {name: version_of(name) for name in (packages or TOOLS)}
