"""``oakpipe run``: camera -> neural network -> screen, on an OAK or on the host emulating one.

The names below load on first use (PEP 562): ``oakpipe convert`` reads
``oakpipe.live.export_check`` from this package, and a cached convert must not pay for
numpy and the pipeline to do so."""

from __future__ import annotations

from typing import Any

__all__ = ["RunOptions", "RunSummary", "run_export"]


def __getattr__(name: str) -> Any:
    if name == "RunOptions":
        from oakpipe.live.options import RunOptions

        return RunOptions
    if name == "RunSummary":
        from oakpipe.live.result import RunSummary

        return RunSummary
    if name == "run_export":
        from oakpipe.live.pipeline import run_export

        return run_export
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
