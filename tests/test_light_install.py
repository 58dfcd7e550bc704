"""The light install: ``oakpipe run`` without torch, onnx, onnxruntime or onnxslim.

Two levels. In-process, with those modules blocked by a meta-path finder (so it runs in
every ``make test`` in seconds): the run path imports none of them, and every command that
needs them answers with one line. Then, marked ``light_install``, a fresh virtual
environment with only the core dependencies (pip's cache makes the second run fast).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from oakpipe.extras import CONVERT_INSTALL, CONVERT_MODULES, missing_convert_packages, require_convert_extra

REPO = Path(__file__).resolve().parents[1]
BLOCKED = ("torch", "onnx", "onnxruntime", "onnxslim")

#: Runs in a child interpreter: block the convert extra, then drive the CLI as a user would.
BLOCKED_SCRIPT = textwrap.dedent("""
    import contextlib, importlib.abc, io, json, sys
    BLOCKED = set(sys.argv[1].split(","))

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
            return None

    sys.meta_path.insert(0, Blocker())
    import oakpipe  # noqa: F401  (the package itself must import)
    from oakpipe.cli import main

    def call(*argv):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = main(["--quiet", *argv])
        return {"rc": rc, "stderr": err.getvalue()}

    export, scratch = sys.argv[2], sys.argv[3]
    view = ["--frames", "3", "--display", "none"]
    results = {
        "folder": call("run", export, "--backend", "host", *view),
        "archive": call("run", export + "/halve.tar.xz", "--backend", "host", *view),
        "device": call("run", export, "--backend", "device", *view),
        "convert": call("convert", "halve", "--out", scratch),
        "verify": call("verify", export),
        "deploy": call("deploy", "halve", "--out", scratch, *view),
        "bench": call("bench", "--quick", "--out", scratch),
        "imported": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED),
    }
    print("RESULT " + json.dumps(results))
""")


def run_blocked(export: Path, scratch: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), DEPTHAI_TELEMETRY="0")
    proc = subprocess.run([sys.executable, "-c", BLOCKED_SCRIPT, ",".join(BLOCKED), str(export), str(scratch)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=scratch.parent)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_run_path_needs_no_convert_extra(halve_export, tmp_path):
    results = run_blocked(halve_export.folder, tmp_path / "scratch")
    assert results["imported"] == [], "the run path imported a module of the convert extra"
    for kind in ("folder", "archive"):
        assert results[kind]["rc"] == 0, results[kind]["stderr"]
    device = results["device"]  # no OAK here: the same one line as the full install gives
    assert device["rc"] == 6 and device["stderr"].startswith("oakpipe: device: no OAK"), device
    for command in ("convert", "verify", "deploy", "bench"):
        answer = results[command]
        lines = answer["stderr"].strip().splitlines()
        assert answer["rc"] == 5, (command, answer)
        assert len(lines) == 1 and CONVERT_INSTALL in lines[0] and "Traceback" not in answer["stderr"], answer
        assert f"oakpipe {command} needs the convert extra (torch, onnx, onnxruntime, onnxslim" in lines[0]
    assert not (tmp_path / "scratch").exists(), "a refused convert must not start an export folder"


def test_require_convert_extra_names_the_missing_package(monkeypatch):
    import oakpipe.extras as extras

    assert missing_convert_packages() == []  # this (full) environment has the extra
    require_convert_extra("convert")
    monkeypatch.setattr(extras, "is_installed", lambda module: module != "yaml")
    assert missing_convert_packages() == ["pyyaml"]
    with pytest.raises(extras.MissingExtraError, match=r"oakpipe estimate needs the convert extra \(pyyaml") as info:
        require_convert_extra("estimate")
    assert info.value.exit_code == 5 and info.value.hint == CONVERT_INSTALL


def test_convert_extra_matches_pyproject():
    """The guard's list and pyproject's [convert] extra are the same packages."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {d.split("=")[0].split(">")[0].split("<")[0].strip().lower() for d in project["optional-dependencies"]
             ["convert"]}
    assert names == set(CONVERT_MODULES.values())
    core = " ".join(project["dependencies"])
    assert not any(name in core for name in ("torch", "onnx", "pydantic", "yaml"))


NETWORK_ERRORS = ("NewConnectionError", "Max retries exceeded", "Temporary failure in name resolution",
                  "Network is unreachable", "Failed to establish a new connection", "Connection refused")


def core_source(tmp_path: Path) -> Path:
    """What a wheel is built from (no .venv, no build litter left in the checkout)."""
    import shutil

    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "oakpipe", source / "oakpipe", ignore=shutil.ignore_patterns("__pycache__"))
    return source


@pytest.mark.light_install
def test_fresh_core_only_environment_runs_an_export(halve_export, tmp_path):
    """`pip install oakpipe` (no extra) into a new venv: it runs an export folder and an NN
    Archive made by the full install on the host emulator, and convert says what to add."""
    venv = tmp_path / "light-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python, oakpipe = venv / "bin" / "python", venv / "bin" / "oakpipe"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["DEPTHAI_TELEMETRY"] = "0"
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", str(core_source(tmp_path))],
                         capture_output=True, text=True, timeout=1200, env=env)
    if pip.returncode != 0 and any(marker in pip.stderr for marker in NETWORK_ERRORS):
        pytest.skip(f"PyPI is unreachable, so no fresh environment: {pip.stderr.strip().splitlines()[-1]}")
    assert pip.returncode == 0, pip.stderr[-3000:]

    probe = "import importlib.util as u; print([m for m in %r if u.find_spec(m)])" % (BLOCKED,)
    found = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert found.stdout.strip() == "[]", "the core install pulled in part of the convert extra"
    data = ("data/astronaut.jpg", "models/styles/hubble_deep_field.jpg", "models/weights/stylizer_magenta.pt")
    probe = "import importlib.resources as r; print([f for f in %r if not (r.files('oakpipe') / f).is_file()])"
    missing = subprocess.run([str(python), "-c", probe % (data,)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert missing.stdout.strip() == "[]", f"the wheel lacks package data: {missing.stdout}{missing.stderr}"

    def oakpipe_says(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(oakpipe), "--quiet", *argv], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=300)

    view = ("--frames", "3", "--display", "none")
    for target in (halve_export.folder, halve_export.archive):
        ran = oakpipe_says("run", str(target), "--backend", "host", *view)
        assert ran.returncode == 0 and "oakpipe run: 3 frames" in ran.stdout, ran.stderr
    device = oakpipe_says("run", str(halve_export.folder), "--backend", "device", *view)
    assert device.returncode == 6 and device.stderr.startswith("oakpipe: device: no OAK"), device.stderr
    refused = oakpipe_says("convert", "halve", "--out", str(tmp_path / "halve"))
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 5 and len(lines) == 1 and CONVERT_INSTALL in lines[0], refused.stderr
