"""Can this machine have the MyriadX compiler at all?

``openvino==2021.4.2``, the last release with the MYRIAD compiler, has wheels on PyPI
for Linux x86-64, Windows x64 and macOS x86-64 only: none for Linux aarch64 (Raspberry
Pi, Jetson) or macOS arm64 (Apple Silicon). There, blobs are compiled on an x86-64
machine (the export folder or NN Archive is then copied over), or, opt-in, by Luxonis'
web compiler; everything else (ONNX, IR, verify, run) works. This is the one place that
decides it; the toolchain install, convert and doctor all ask here.
"""

from __future__ import annotations

import platform
import sys

#: (sys.platform, platform.machine() lower-cased) -> name, where openvino==2021.4.2 has wheels.
COMPILER_PLATFORMS = {("linux", "x86_64"): "Linux x86-64", ("win32", "amd64"): "Windows x64",
                      ("darwin", "x86_64"): "macOS x86-64"}
ELSEWHERE_HINT = ("compile blobs on an x86-64 machine and copy the export folder or NN Archive here, "
                  "or use --compiler blobconverter (uploads the model to Luxonis' web compiler)")


def this_platform() -> str:
    """'linux aarch64', 'darwin arm64': read at call time (tests monkeypatch both)."""
    return f"{sys.platform} {platform.machine().lower()}"


def compiler_platform_problem() -> str | None:
    """None where the 2021.4 compiler can be installed; else one line saying why not."""
    system, machine = this_platform().split(" ", 1)
    if (system, machine) in COMPILER_PLATFORMS:
        return None
    supported = ", ".join(COMPILER_PLATFORMS.values())
    return (f"the MyriadX compiler (openvino 2021.4.2) has no wheels for {system} {machine} "
            f"(only {supported})")
