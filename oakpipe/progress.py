"""One line per stage with its duration, on stderr, so stdout stays for results.

oakpipe's output has two paths: progress lines (``Progress.say``: stages, what is being
done; silenced by ``quiet``) and warnings (``Progress.warn`` and ``logging.getLogger("oakpipe")``,
shown even when quiet, one line each as the CLI formats them). Nothing else prints to stderr
but the CLI's final error line."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Progress:
    def __init__(self, quiet: bool = False, stream=None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def warn(self, text: str) -> None:
        """A warning is shown even when quiet: through the package logger (one line)."""
        logging.getLogger("oakpipe").warning(text)

    def stage_done(self, stage: str, seconds: float, cached: bool, detail: str = "") -> None:
        state = "cached" if cached else f"{seconds:6.2f} s"
        self.say(f"  {stage:<10} {state:>9}  {detail}".rstrip())

    @contextmanager
    def timed(self, label: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.say(f"  {label:<10} {time.perf_counter() - start:6.2f} s")
