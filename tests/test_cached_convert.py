"""A cached convert answers from the manifest: it loads none of the heavy libraries.

Behaviour, not timing (its speed is in ``oakpipe bench``): the interpreter's own import log
(``-X importtime``) of a second ``oakpipe convert`` must name neither torch, OpenVINO,
ONNX (onnx, onnxruntime, onnxslim) nor numpy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from oakpipe import ConvertOptions, convert
from tests.conftest import MODELS_FILE

pytestmark = pytest.mark.toolchain

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "openvino", "onnx", "onnxruntime", "onnxslim", "numpy")


def imported_by_cli(*args: str) -> set[str]:
    """Top-level names of every module ``python -X importtime -m oakpipe ARGS`` imported."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "oakpipe", "--quiet", *args],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "(all cached)" not in proc.stdout  # --quiet: only the export's summary is printed
    names = [line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert names, "no -X importtime output to inspect"
    return {name.split(".")[0] for name in names[1:]}  # [0] is the header row


def test_cached_convert_of_a_builtin_imports_no_heavy_library(halve_export):
    loaded = imported_by_cli("convert", "halve", "--out", str(halve_export.folder))
    assert "oakpipe" in loaded  # the log was read
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_cached_convert_of_a_python_file_imports_no_heavy_library(tmp_path):
    """A ``file.py:Class`` model is keyed by the file's bytes (and its siblings'), not by
    importing it: importing it would import torch."""
    out = tmp_path / "small"
    convert(ConvertOptions(model=f"{MODELS_FILE}:SmallCNN", input_shape=(1, 3, 64, 64), out=out, verify=False))
    loaded = imported_by_cli("convert", f"{MODELS_FILE}:SmallCNN", "--input-shape", "1,3,64,64",
                             "--no-verify", "--out", str(out))
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
