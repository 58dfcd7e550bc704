"""``oakpipe run``: camera -> neural network -> screen, on an OAK or on the host emulating one."""

from oakpipe.live.options import RunOptions
from oakpipe.live.pipeline import run_export
from oakpipe.live.result import RunSummary

__all__ = ["RunOptions", "RunSummary", "run_export"]
