"""``oakpipe run``: camera -> neural network -> screen, on an OAK or on the host emulating one."""

from oakpipe.run.options import RunOptions
from oakpipe.run.pipeline import run_export
from oakpipe.run.result import RunSummary

__all__ = ["RunOptions", "RunSummary", "run_export"]
