"""Errors sorted by who can fix them.

The library raises these; only the CLI turns them into one line and an exit code.
Every message says what is wrong *and* what to do about it.
"""

from __future__ import annotations


class OakpipeError(Exception):
    """Base class: anything oakpipe reports to a user as one line."""

    exit_code = 1
    label = "error"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message.strip().replace("\n", " ")
        if self.hint:
            text = f"{text} -> {self.hint.strip()}"
        return text


class UserError(OakpipeError):
    """The user can fix it: a wrong option, a missing file, a bad input."""

    exit_code = 2
    label = "error"


class ModelError(UserError):
    """The user's model itself is at fault (its forward raises, its weights don't fit)."""

    label = "model error"


class UnsupportedModelError(UserError):
    """The MyriadX compiler (or the exporter) cannot take this model as it is."""

    exit_code = 3
    label = "unsupported"


class VerificationError(OakpipeError):
    """A converted stage does not compute what the PyTorch model computes."""

    exit_code = 4
    label = "verification failed"


class ToolchainError(OakpipeError):
    """The machine's set-up is missing or broken (compiler, Python 3.8/3.9, libraries)."""

    exit_code = 5
    label = "toolchain"


class DeviceError(OakpipeError):
    """The OAK camera is missing, busy or refuses the pipeline."""

    exit_code = 6
    label = "device"


class InternalError(OakpipeError):
    """A bug in oakpipe: nobody but us can fix it."""

    exit_code = 70
    label = "internal error"
