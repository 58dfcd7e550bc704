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


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, the first SIGINT/SIGTERM/SIGHUP raises ``Stopped``; later ones are ignored.

    Signal handlers can only be set from the main thread; elsewhere (a run in a worker
    thread) the block changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, frame) -> None:
        if not fired:
            fired.append(signum)
            raise Stopped(signum)

    # a signal ignored by whoever started us (nohup ignores SIGHUP) stays ignored
    previous = {s: signal.signal(s, handler) for s in HANDLED if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


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
