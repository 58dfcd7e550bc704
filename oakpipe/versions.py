"""Versions of the tools that decide an artifact, read without importing them (fast)."""

from __future__ import annotations

from functools import cache
from importlib import metadata

TOOLS = ("oakpipe", "torch", "onnx", "onnxslim", "onnxruntime", "openvino", "depthai", "numpy")


@cache
def version_of(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def tool_versions(*packages: str) -> dict[str, str | None]:
    return {name: version_of(name) for name in (packages or TOOLS)}
