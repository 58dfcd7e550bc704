"""Install the private MyriadX compiler environment (``oakpipe toolchain install``).

Steps, each said out loud: find a CPython 3.8/3.9 (or make one with uv), create a
virtual environment beside nothing else, pip-install the pinned OpenVINO 2021.4.2 wheel
with PyPI's libusb, and check that it imports. The environment is built under a
temporary name and renamed into place, so a failed install never looks complete.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from oakpipe.errors import ToolchainError
from oakpipe.toolchain import OPENVINO_VERSION, ToolchainStatus, python_is_supported, status, toolchain_dir

PINNED_PACKAGES = [f"openvino=={OPENVINO_VERSION}", "numpy==1.19.5", "libusb-package==1.0.30.0"]
#: Optional, for the benchmark's 2021 reference chain. Its declared dependencies pull
#: packages that need a Rust toolchain, so it goes in with --no-deps and these pins, in the
#: SAME pip call as openvino (a separate call can replace the shared openvino/ folder).
MODEL_OPTIMIZER_PACKAGES = [f"openvino-dev=={OPENVINO_VERSION}", "networkx==2.8.8", "defusedxml==0.7.1",
                            "onnx==1.12.0", "protobuf==3.20.1"]
PREFERRED_VERSIONS = ("3.9", "3.8")

Say = Callable[[str], None]


def interpreter_version(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    major, minor = out.stdout.split()
    return int(major), int(minor)


def candidate_interpreters() -> list[str]:
    """Places a CPython 3.8/3.9 usually hides, best first."""
    found: list[str] = []
    if os.environ.get("OAKPIPE_TOOLCHAIN_PYTHON"):
        found.append(os.environ["OAKPIPE_TOOLCHAIN_PYTHON"])
    for version in PREFERRED_VERSIONS:
        on_path = shutil.which(f"python{version}")
        if on_path:
            found.append(on_path)
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    for version in PREFERRED_VERSIONS:
        matches = sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"), reverse=True)
        found += [m for m in matches if re.search(rf"/{re.escape(version)}\.\d+/bin/", m)]
    managed = toolchain_dir().parent / "python"
    found += sorted(glob.glob(f"{managed}/**/bin/python3.9", recursive=True))
    uv = find_uv()
    if uv:
        for version in PREFERRED_VERSIONS:
            out = subprocess.run([uv, "python", "find", version], capture_output=True, text=True)
            if out.returncode == 0 and out.stdout.strip():
                found.append(out.stdout.strip())
    return list(dict.fromkeys(found))


def find_uv() -> str | None:
    beside_us = Path(sys.executable).with_name("uv")
    return str(beside_us) if beside_us.exists() else shutil.which("uv")


def find_old_python(say: Say) -> str:
    for python in candidate_interpreters():
        version = interpreter_version(python)
        if version and python_is_supported(version) and version >= (3, 8):
            say(f"found CPython {version[0]}.{version[1]} at {python}")
            return python
    return make_old_python(say)


def make_old_python(say: Say) -> str:
    """No 3.8/3.9 here: download a standalone CPython 3.9 with uv (needs the internet)."""
    say("no CPython 3.8 or 3.9 found on PATH, in pyenv or in uv's store")
    uv = find_uv()
    if uv is None:
        say("installing uv (from PyPI) into oakpipe's environment to fetch a standalone CPython 3.9")
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "uv"], capture_output=True, text=True)
        uv = find_uv()
        if proc.returncode != 0 or uv is None:
            raise ToolchainError(
                "no CPython 3.8/3.9 found and uv could not be installed to make one",
                "install one (pyenv install 3.9, deadsnakes' python3.9 or Debian bullseye's python3.9) "
                "and set OAKPIPE_TOOLCHAIN_PYTHON to it",
            )
    target = toolchain_dir().parent / "python"
    say(f"downloading a standalone CPython 3.9 with uv into {target}")
    proc = subprocess.run([uv, "python", "install", "3.9", "--install-dir", str(target)], capture_output=True, text=True)
    found = sorted(glob.glob(f"{target}/**/bin/python3.9", recursive=True))
    if proc.returncode != 0 or not found:
        raise ToolchainError(
            f"uv could not install CPython 3.9: {proc.stderr.strip()[-300:]}",
            "install a CPython 3.8/3.9 yourself and set OAKPIPE_TOOLCHAIN_PYTHON to it",
        )
    return found[0]


def run_step(args: list[str], what: str) -> None:
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-500:]
        raise ToolchainError(f"{what} failed: {tail}", "see the message above; rerun oakpipe toolchain install")


def has_model_optimizer() -> bool:
    """Installed in the private environment? (Run as ``python -m mo``: the venv was built
    under a temporary name, so its console scripts' shebangs point nowhere.)"""
    from oakpipe.toolchain import toolchain_python

    python = toolchain_python()
    if not python.exists():
        return False
    probe = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('mo.main') else 1)"
    return subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0


def add_model_optimizer(python: str, say: Say) -> None:
    say(f"installing the 2021.4 Model Optimizer ({', '.join(MODEL_OPTIMIZER_PACKAGES)}), --no-deps")
    run_step([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
              *PINNED_PACKAGES, *MODEL_OPTIMIZER_PACKAGES], "pip install of the 2021.4 Model Optimizer")


def install(say: Say = print, force: bool = False, with_model_optimizer: bool = False) -> ToolchainStatus:
    """Install (or reuse) the toolchain. Idempotent: a working install is left alone."""
    from oakpipe.toolchain import toolchain_python
    from oakpipe.toolchain.platforms import ELSEWHERE_HINT, compiler_platform_problem

    unsupported = compiler_platform_problem()
    if unsupported:  # say so at once, not after pip's "no matching distribution"
        raise ToolchainError(unsupported, ELSEWHERE_HINT)
    current = status()
    if current.installed and not force:
        say(f"MyriadX compiler already installed at {current.location} (openvino {current.openvino})")
        if with_model_optimizer and not has_model_optimizer():
            add_model_optimizer(str(toolchain_python()), say)
            current = status()
        return current
    base = find_old_python(say)
    final = toolchain_dir()
    partial = final.with_name(final.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        say(f"creating a private virtual environment in {final}")
        run_step([base, "-m", "venv", str(partial / "venv")], "creating the virtual environment")
        python = str(partial / "venv" / "bin" / "python")
        say(f"installing {', '.join(PINNED_PACKAGES)} (about 180 MB)")
        run_step([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *PINNED_PACKAGES],
                 "pip install of the OpenVINO 2021.4 wheels")
        if with_model_optimizer:
            add_model_optimizer(python, say)
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    result = status()
    if not result.installed:
        raise ToolchainError("the toolchain was installed but does not work: " + "; ".join(result.problems),
                             "rerun with: oakpipe toolchain install --force")
    say(f"MyriadX compiler ready: openvino {result.openvino}")
    return result
