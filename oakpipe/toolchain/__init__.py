"""The private MyriadX compiler environment: where it lives, whether it works, how to call it.

The only compiler for RVC2 blobs left is OpenVINO 2021.4's MYRIAD plugin, whose wheels
need CPython 3.6-3.9 and numpy < 1.20. It lives in its own virtual environment under
``toolchain_dir()``, installed by ``oakpipe toolchain install``, and is only ever run as
a subprocess, so nothing in the main environment depends on old Python or old numpy.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from oakpipe.errors import InternalError, ToolchainError

OPENVINO_VERSION = "2021.4.2"
COMPILER_LABEL = "2021.4"
WORKER = Path(__file__).with_name("compile_worker.py")
INSTALL_COMMAND = "oakpipe toolchain install   (or: make toolchain)"


DEFAULT_COMPILE_TIMEOUT = 600.0  # seconds; --compile-timeout


class CompilerTimeout(ToolchainError):
    """The compiler ran past its time budget. Callers that know the model (the blob stage,
    the preflight) turn it into an UnsupportedModelError naming its largest layers: the
    compiler works, this model is slow to compile. ``output`` is what the worker printed."""

    def __init__(self, message: str, seconds: float, output: str = "") -> None:
        super().__init__(message, "raise --compile-timeout, or use a smaller input size or model")
        self.seconds = seconds
        self.output = output
        self.done: list[dict] = []  # compile_probe_batch: the verdicts finished in time


def toolchain_dir() -> Path:
    """``$OAKPIPE_TOOLCHAIN_DIR``, else ``$XDG_DATA_HOME/oakpipe/toolchain`` (shared by clones)."""
    explicit = os.environ.get("OAKPIPE_TOOLCHAIN_DIR")
    if explicit:
        return Path(explicit).expanduser()
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data_home / "oakpipe" / "toolchain" / f"openvino-{OPENVINO_VERSION}"


def toolchain_python() -> Path:
    return toolchain_dir() / "venv" / "bin" / "python"


@dataclass
class ToolchainStatus:
    installed: bool
    location: Path
    python: str | None = None
    openvino: str | None = None
    problems: list[str] = field(default_factory=list)
    unsupported: bool = False  # no 2021.4 wheels for this platform at all (aarch64, arm64)

    def lines(self) -> list[str]:
        state = "installed" if self.installed else "NOT installed"
        lines = [f"MyriadX compiler (OpenVINO {OPENVINO_VERSION} MYRIAD plugin): {state}",
                 f"  location: {self.location}"]
        if self.python:
            lines.append(f"  interpreter: {self.python}")
        if self.openvino:
            lines.append(f"  openvino: {self.openvino}")
        lines += [f"  problem: {p}" for p in self.problems]
        if self.unsupported:
            from oakpipe.toolchain.platforms import ELSEWHERE_HINT

            lines.append(f"  instead: {ELSEWHERE_HINT}")
        elif not self.installed:
            lines.append(f"  install with: {INSTALL_COMMAND}")
        return lines


def status() -> ToolchainStatus:
    """Ask the private interpreter itself; a recorded marker alone proves nothing."""
    from oakpipe.toolchain.platforms import compiler_platform_problem

    location = toolchain_dir()
    python = toolchain_python()
    unsupported = compiler_platform_problem()
    if unsupported and not python.exists():
        return ToolchainStatus(False, location, problems=[unsupported], unsupported=True)
    if not python.exists():
        return ToolchainStatus(False, location, problems=["no private interpreter yet"])
    probe = (
        "import sys, openvino.inference_engine as ie; "
        "print(sys.version.split()[0]); print(ie.get_version())"
    )
    try:
        proc = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return ToolchainStatus(False, location, problems=[f"interpreter does not run: {exc}"])
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["unknown failure"])[-1]
        return ToolchainStatus(False, location, str(python), problems=[f"openvino import fails: {last}"])
    version, ov = proc.stdout.split()[:2]
    return ToolchainStatus(True, location, f"{python} (Python {version})", ov)


def compile_onnx_to_blob(onnx_path: Path, blob_path: Path, shaves: int,
                         timeout: float = DEFAULT_COMPILE_TIMEOUT) -> dict:
    """Run the worker; return its result dict (``ok`` False carries the compiler's message)."""
    request = {"onnx": str(onnx_path), "blob": str(blob_path), "shaves": shaves}
    proc = run_worker(request, timeout, f"the MyriadX compiler ran past {timeout:.0f} s")
    return _parse_worker_output(proc)


def compile_probe_batch(onnx_paths: list[Path], shaves: int = 6,
                        timeout: float = DEFAULT_COMPILE_TIMEOUT) -> list[dict]:
    """Compile many small graphs in one worker process (the preflight's probes).

    Returns one verdict per path, in order: ``ok``, and ``message`` when not. Precisions
    are left as the graphs have them. If the compiler kills the process on a probe, that
    probe is reported as a crash (``crashed`` True) and the rest go to a fresh worker.
    ``timeout`` is the budget of the whole batch; past it, CompilerTimeout carries
    ``done``, the verdicts finished so far (the next path is the one that ran out of time).
    """
    import time

    from oakpipe.toolchain.compile_worker import PROBE_PREFIX

    deadline = time.monotonic() + timeout
    verdicts: list[dict] = []
    while len(verdicts) < len(onnx_paths):
        pending = onnx_paths[len(verdicts):]
        request = {"probes": [{"onnx": str(p), "blob": None} for p in pending], "shaves": shaves,
                   "input_precision": None, "output_precision": None}
        try:
            proc = run_worker(request, max(1e-3, deadline - time.monotonic()),
                              f"the MyriadX compiler ran past {timeout:.0f} s on {len(onnx_paths)} probe graphs")
        except CompilerTimeout as exc:
            exc.done = verdicts + [json.loads(line[len(PROBE_PREFIX):]) for line in exc.output.splitlines()
                                   if line.startswith(PROBE_PREFIX)]
            if len(exc.done) == len(onnx_paths):  # every verdict is in; only the worker's exit was late
                return exc.done
            exc.seconds = timeout
            raise
        done = [json.loads(line[len(PROBE_PREFIX):]) for line in proc.stdout.splitlines()
                if line.startswith(PROBE_PREFIX)]
        verdicts += done
        if len(done) < len(pending):
            if proc.returncode >= 0:  # not killed by a signal: the worker itself failed
                result = _parse_worker_output(proc)  # raises when there is no result line
                raise InternalError(f"the probe worker stopped after {len(done)} of {len(pending)} probes: "
                                    f"{result.get('message', 'no message')}")
            tail = " ".join((proc.stderr or "").strip().splitlines()[-2:])
            verdicts.append({"ok": False, "crashed": True, "phase": "compile",
                             "message": f"the compiler crashed (exit {proc.returncode}) on this graph: {tail}"[:600]})
    return verdicts


def run_worker(request: dict, timeout: float, timeout_message: str, env: dict | None = None):
    """Run the worker on one request in the private interpreter; return the finished process."""
    python = toolchain_python()
    if not python.exists():
        from oakpipe.toolchain.platforms import ELSEWHERE_HINT, compiler_platform_problem

        unsupported = compiler_platform_problem()
        if unsupported:
            raise ToolchainError(unsupported, ELSEWHERE_HINT)
        raise ToolchainError("the MyriadX compiler is not installed", f"run: {INSTALL_COMMAND}")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(request, handle)
        request_path = handle.name
    environment = dict(env or os.environ, PYTHONNOUSERSITE="1", PYTHONPATH="")
    try:
        return subprocess.run([str(python), str(WORKER), request_path], capture_output=True, text=True,
                              timeout=timeout, env=environment, preexec_fn=die_with_parent(os.getpid()))
    except subprocess.TimeoutExpired as exc:  # subprocess.run has killed the worker
        output = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        raise CompilerTimeout(timeout_message, timeout, output) from None
    finally:
        os.unlink(request_path)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int):
    """A ``preexec_fn`` that makes the child get SIGKILL when ``parent`` dies (Linux).

    Without it a kill -9 of oakpipe leaves the compiler running on, holding memory and
    the temporary files; the worker has nothing to save, so the hard signal is right."""
    def preexec() -> None:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def infer_with_2021_frontend(model: Path, frames: list, timeout: float = 600) -> list[dict]:
    """Outputs of ``model`` run by OpenVINO 2021.4's CPU plugin on U8 frames (1, 3, H, W)."""
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="oakpipe-infer-") as tmp:
        inputs = []
        for index, frame in enumerate(frames):
            inputs.append(os.path.join(tmp, f"in{index}.npy"))
            np.save(inputs[-1], np.ascontiguousarray(frame, dtype=np.uint8))
        request = {"infer": str(model), "inputs": inputs, "outputs_dir": tmp}
        result = _parse_worker_output(run_worker(request, timeout, "OpenVINO 2021.4 inference timed out"))
        if not result["ok"]:
            raise ToolchainError(f"OpenVINO 2021.4 could not run the graph: {result.get('message')}",
                                 "rerun with --debug")
        outputs: list[dict] = [{} for _ in frames]
        for item in result["outputs"]:
            outputs[item["index"]][item["output"]] = np.load(item["path"]).astype(np.float32)
        return outputs


def _parse_worker_output(proc: subprocess.CompletedProcess) -> dict:
    from oakpipe.toolchain.compile_worker import RESULT_PREFIX

    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
            result["log"] = (proc.stdout + proc.stderr)[-4000:]
            return result
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    if proc.returncode < 0:
        raise ToolchainError(f"the MyriadX compiler crashed (signal {-proc.returncode}): {' '.join(tail)}",
                             f"check the toolchain with: oakpipe toolchain status; reinstall with {INSTALL_COMMAND}")
    raise InternalError(f"the compiler worker gave no result (exit {proc.returncode}): {' '.join(tail)}")


def python_is_supported(version: tuple[int, int]) -> bool:
    return (3, 6) <= version <= (3, 9)


__all__ = ["status", "compile_onnx_to_blob", "toolchain_dir", "ToolchainStatus"]
