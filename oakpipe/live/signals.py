"""SIGTERM and SIGHUP stop a run the way Ctrl-C does.

``timeout``, systemd, ``docker stop`` and a dropped SSH session end a process with SIGTERM
or SIGHUP, whose default action kills it on the spot: the MP4 loses its index and will
not play, and no summary is printed. While a run is going, those signals (and SIGINT)
raise ``Stopped`` in the main thread instead, which the frame loop treats like Ctrl-C, so
every file is closed and complete. Only the first signal stops the run; later ones are
ignored until the files are closed, so a second Ctrl-C cannot cut the recording short.

The CLI exits with 128 + the signal's number (130, 143, 129), the shell's convention for
"ended by a signal", so a caller can tell an interrupted run from a finished one.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOPPED_BY = {signal.SIGINT: "interrupted (Ctrl-C)", signal.SIGTERM: "terminated (SIGTERM)",
              signal.SIGHUP: "hung up (SIGHUP)"}


class Stopped(KeyboardInterrupt):
    """A stop signal arrived; a KeyboardInterrupt so code that handles Ctrl-C handles it too."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def signal_of(exc: BaseException) -> int:
    """The signal behind an interrupt (a bare KeyboardInterrupt is Ctrl-C's SIGINT)."""
    return getattr(exc, "signum", signal.SIGINT)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


def exit_code(signum: int) -> int:
    return 128 + int(signum)


class _Gate:
    """Whether a stop signal may raise now, or must wait for the current frame to be finished."""

    def __init__(self) -> None:
        self.fired: int | None = None
        self.holding = 0
        self.pending = False

    def handler(self, signum: int, frame) -> None:
        if self.fired is not None:
            return  # the run is already stopping: let it close its files
        self.fired = signum
        if self.holding:
            self.pending = True
        else:
            raise Stopped(signum)


_gate: _Gate | None = None


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, the first SIGINT/SIGTERM/SIGHUP raises ``Stopped``; later ones are ignored.

    Signal handlers can only be set from the main thread; elsewhere (a run in a worker
    thread) the block changes nothing.
    """
    global _gate
    if threading.current_thread() is not threading.main_thread() or _gate is not None:
        yield
        return
    _gate = gate = _Gate()
    # a signal ignored by whoever started us (nohup ignores SIGHUP) stays ignored
    previous = {s: signal.signal(s, gate.handler) for s in HANDLED if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
        _gate = None


@contextmanager
def held() -> Iterator[None]:
    """A stop signal during the block takes effect at its end: a frame is recorded, saved and
    counted entirely or not at all (the summary's count is the recording's), and a file being
    closed is finished before the run stops."""
    gate = _gate if threading.current_thread() is threading.main_thread() else None
    if gate is None:
        yield
        return
    gate.holding += 1
    try:
        yield
    finally:
        gate.holding -= 1
    if not gate.holding and gate.pending:
        gate.pending = False
        raise Stopped(gate.fired)  # type: ignore[arg-type]



@contextmanager
def file_size_limit_is_an_error() -> Iterator[None]:
    """Past a file size limit (``ulimit -f``) a write fails with EFBIG, which is reported.

    Python ignores SIGXFSZ, but depthai's crash handler (installed when depthai is imported,
    without Python knowing) catches it and kills the process, losing every file. Enter this
    after the backend's libraries are loaded.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGXFSZ, previous)
