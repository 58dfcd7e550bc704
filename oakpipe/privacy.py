"""Keep oakpipe offline: every switch that stops a library from phoning home, in one place.

``import oakpipe`` calls ``apply()`` before any of its modules can import depthai or
openvino, so the CLI, the Python API and the tests all get it. The one network use left is
the opt-in ``--compiler blobconverter``, and depthai's own search when looking for an OAK.

- depthai reports usage to Luxonis unless ``DEPTHAI_TELEMETRY=0`` (its documented switch).
- OpenVINO (2026, in the main environment) sends Google Analytics events through the
  ``openvino_telemetry`` package: about 11 per ``convert`` (on ``import openvino`` and in
  ``ov.convert_model``), one per ``run``, and writes a client id under ``~/intel``. Its
  documented off switches do not fit: ``opt_in_out --opt_out`` records the choice in
  ``~/intel/openvino_telemetry`` (a write under ``~/intel``, and a change to the user's
  machine-wide choice), and ``disable_in_ci`` needs ``CI=true`` in the environment, which
  also changes PyTorch's and imageio's behaviour and every child process. So oakpipe takes
  the path OpenVINO itself takes when the package is not installed: every OpenVINO module
  that reports (``openvino.tools.ovc``, and the 2021.4 Model Optimizer) imports it inside
  ``try: import openvino_telemetry ... except ImportError:`` and falls back to its own
  no-op ``telemetry_stub``. Marking the module absent in ``sys.modules`` makes that import
  fail: nothing is sent, no thread is started, nothing is written, for this process only.
- onnxruntime (1.32, Linux too) starts Microsoft's 1DS telemetry when it is imported: it
  writes a device id and an event database under ``~/.cache/Microsoft/DeveloperTools/
  .onnxruntime`` (1.8 MB here after a day of tests) and uploads the events to
  ``mobile.events.data.microsoft.com`` from a background thread (DNS lookups seen with
  strace during convert's verify). ``disable_telemetry_events()`` does not stop the upload
  of what is stored; its ``ORT_DISABLE_TELEMETRY=1`` switch stops both, for this process and
  its children (measured: no file under ``~/.cache/Microsoft``, no lookup).
- The 2021.4 toolchain runs in another interpreter: ``compile_worker.py`` (which cannot
  use oakpipe's modules) repeats the one line of ``PRELUDE``; ``python_module_args`` runs any
  other of its tools (the Model Optimizer) behind it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

ENVIRONMENT = {"DEPTHAI_TELEMETRY": "0", "ORT_DISABLE_TELEMETRY": "1"}
BLOCKED_MODULES = ("openvino_telemetry",)
PRELUDE = "import sys; sys.modules['openvino_telemetry'] = None"


def apply(environ: MutableMapping[str, str] | None = None, modules: MutableMapping | None = None) -> None:
    """Turn every known telemetry off for this process and its children.

    A variable the user set keeps its value (``doctor`` warns about ``DEPTHAI_TELEMETRY``);
    the OpenVINO block is unconditional, since OpenVINO has no switch that stays off the disk.
    """
    environ = os.environ if environ is None else environ
    modules = sys.modules if modules is None else modules
    for name, value in ENVIRONMENT.items():
        environ.setdefault(name, value)
    for name in BLOCKED_MODULES:
        modules[name] = None  # type: ignore[assignment]  # ``import openvino_telemetry`` now raises ImportError


def python_module_args(module: str) -> list[str]:
    """Arguments for another interpreter to run ``python -m MODULE`` with telemetry blocked."""
    return ["-c", f"{PRELUDE}; import runpy; runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"]
