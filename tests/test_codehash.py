"""An honest cache: a stage's key covers every oakpipe module it runs, found from imports."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from oakpipe.codehash import PACKAGE, closure, code_digest


def names(files) -> set[str]:
    return {str(Path(f).relative_to(PACKAGE)) for f in files}


def test_the_device_stage_runs_the_camera_contract():
    """The file a hand-kept list once missed."""
    assert {"preprocessing.py", "stages/device_graph.py", "stages/rewrites.py"} <= names(
        closure(("oakpipe.stages.device_graph",)))
    assert "preprocessing.py" in names(closure(("oakpipe.verify.api", "oakpipe.verify.core")))


def test_a_stage_is_not_keyed_by_code_it_does_not_run():
    ir = names(closure(("oakpipe.stages.ir",)))
    assert "stages/ir.py" in ir and "preprocessing.py" not in ir and "live/pipeline.py" not in ir
    assert "__init__.py" in ir  # importing oakpipe.stages.ir runs the package's __init__ (hashed, not followed)


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_every_form_of_import_is_followed(tmp_path):
    package = tmp_path / "oakpipe"
    write(package, "__init__.py", "from oakpipe.api import everything\n")
    write(package, "api.py", "")
    write(package, "stage/__init__.py", "")
    write(package, "stage/main.py", "from . import sibling\nfrom .helper import thing\n"
                                    "def run():\n    import oakpipe.lazy\n    from oakpipe import pkg\n")
    for name in ("stage/sibling.py", "stage/helper.py", "lazy.py", "unused.py"):
        write(package, name, "")
    write(package, "pkg/__init__.py", "from ..deep import x\n")
    write(package, "deep.py", "")
    found = {str(p.relative_to(package)) for p in closure(("oakpipe.stage.main",), package)}
    assert found == {"__init__.py", "stage/__init__.py", "stage/main.py", "stage/sibling.py", "stage/helper.py",
                     "lazy.py", "pkg/__init__.py", "deep.py"}  # not api.py (only oakpipe/__init__ imports it)
    before = code_digest(["oakpipe.stage.main"], package=package)
    write(package, "unused.py", "x = 1\n")
    closure.cache_clear()
    assert code_digest(["oakpipe.stage.main"], package=package) == before
    write(package, "deep.py", "x = 1\n")
    from oakpipe import codehash

    codehash._file_digest.cache_clear()
    assert code_digest(["oakpipe.stage.main"], package=package) != before


def stage_states(progress: str) -> dict[str, str]:
    """'cached' or 'ran' for each stage line the convert printed."""
    states = {}
    for line in progress.splitlines():
        match = re.match(r"\s{2}(onnx|device|ir|blob|archive|verify)\s+(cached|[\d.]+ s)", line)
        if match:
            states[match.group(1)] = "cached" if match.group(2) == "cached" else "ran"
    return states


@pytest.mark.toolchain
def test_editing_a_module_rebuilds_exactly_the_stages_that_run_it(tmp_path):
    """A copy of the package converts halve; then one module of the copy is edited."""
    copy = tmp_path / "src"
    shutil.copytree(PACKAGE, copy / "oakpipe", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(copy), "DEPTHAI_TELEMETRY": "0"}

    def convert() -> dict[str, str]:
        proc = subprocess.run([sys.executable, "-m", "oakpipe", "convert", "halve", "--input-shape", "1,3,64,64",
                               "--out", str(tmp_path / "export")], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=600)
        assert proc.returncode == 0, proc.stderr
        return stage_states(proc.stderr)

    all_stages = ["onnx", "device", "ir", "blob", "archive", "verify"]
    assert convert() == dict.fromkeys(all_stages, "ran")
    assert convert() == dict.fromkeys(all_stages, "cached")
    with open(copy / "oakpipe" / "preprocessing.py", "a") as handle:
        handle.write("\n# an edit to the camera contract's module\n")
    # The export and the device stage import it (through the options), verify too. The edit
    # does not change the device graph's bytes, so the IR, blob and archive keyed by them stay.
    assert convert() == {"onnx": "ran", "device": "ran", "ir": "cached", "blob": "cached", "archive": "cached",
                         "verify": "ran"}
    with open(copy / "oakpipe" / "stages" / "archive.py", "a") as handle:
        handle.write("\n# an edit to the archive stage only\n")
    assert convert() == {**dict.fromkeys(all_stages, "cached"), "archive": "ran"}


def test_the_text_scan_finds_every_import_ast_finds():
    """The scan is fast; ``ast`` is the reference: it must miss nothing ast sees, in any module."""
    import ast

    from oakpipe.codehash import _absolute, _imported_names, module_file

    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(("oakpipe",) + (parts[:-1] if parts[-1] == "__init__" else parts))
        expected = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                expected.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node.module, node.level, name, path.name == "__init__.py")
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    expected.add(submodule if module_file(submodule) else base)
        assert expected <= _imported_names(path, name, PACKAGE), path
