"""Which optional part of oakpipe is installed: the light core, or the ``convert`` extra too.

The core install (``pip install oakpipe``) is what ``oakpipe run`` needs on the camera's
host; ``pip install 'oakpipe[convert]'`` adds PyTorch, ONNX and the rest for convert,
verify, deploy, bench and estimate. A command that needs the extra asks here first, so a
light install answers with one line saying what to install, never an ImportError.
"""

from __future__ import annotations

import importlib.util

from oakpipe.errors import ToolchainError

#: Import names of the convert extra (pyproject's ``[convert]``), with their package names.
CONVERT_MODULES = {"torch": "torch", "onnx": "onnx", "onnxruntime": "onnxruntime", "onnxslim": "onnxslim",
                   "pydantic": "pydantic", "yaml": "pyyaml", "luxonis_ml": "luxonis-ml"}
CONVERT_INSTALL = "pip install 'oakpipe[convert]'"
#: CLI commands that need the convert extra (``run``, ``toolchain`` and ``doctor`` do not).
CONVERT_COMMANDS = frozenset({"convert", "verify", "deploy", "bench", "estimate"})


class MissingExtraError(ToolchainError):
    """A part of oakpipe that is not installed: the machine's set-up, so exit 5 like the compiler."""

    label = "not installed"


def is_installed(module: str) -> bool:
    """Found on the path, without importing it (torch alone takes seconds to import)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or blocked package counts as missing
        return False


def missing_convert_packages() -> list[str]:
    return [package for module, package in CONVERT_MODULES.items() if not is_installed(module)]


def require_convert_extra(command: str = "convert") -> None:
    """Raise one line naming what is missing and the install line (exit 5: the machine's set-up)."""
    missing = missing_convert_packages()
    if missing:
        raise MissingExtraError(f"oakpipe {command} needs the convert extra ({', '.join(missing)} not installed; "
                             "this is the light, run-only install)", CONVERT_INSTALL)
