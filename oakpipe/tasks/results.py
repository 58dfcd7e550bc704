"""``run --results out.jsonl``: one JSON line per frame a program can read.

Each line: ``sequence`` (frame index), ``timestamp`` (seconds since the run began, when the
frame left the source), ``task`` and the decoded outputs (boxes in pixels of the frame shown,
class id, name, score; keypoints; each instance's mask, or each class's pixels of a class map,
as COCO run-length encoding (``oakpipe.tasks.rle``); or the top-k). The file is written under a temporary name beside the
final one and renamed when the run ends, so a reader never sees half a file under the final
name; a run that dies leaves only the temporary file (removed by the next run to the same
name), and one that cannot write (a full disk) leaves none and says so.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from oakpipe.errors import UserError
from oakpipe.live.files import commit, remove_stale, temporary_name, write_error
from oakpipe.tasks.decode import Decoded

OPTION = "--results"


class ResultsWriter:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in (".jsonl", ".ndjson"):
            raise UserError(f"--results {self.path}: JSON lines are written", "name it e.g. results.jsonl")
        self.temp = temporary_name(self.path)
        remove_stale(self.path)  # what a killed run left for this name
        try:
            self.file = open(self.temp, "w", encoding="utf-8")
        except OSError as exc:
            raise write_error(OPTION, self.path, exc) from None
        self.lines = 0

    def write(self, sequence: int, timestamp: float, decoded: Decoded | None) -> None:
        try:
            self.file.write(result_line(sequence, timestamp, decoded))
        except OSError as exc:  # a full disk, a file size limit: no file rather than a cut one
            self.discard()
            raise write_error(OPTION, self.path, exc) from None
        self.lines += 1

    def close(self, complete: bool = True) -> None:
        """Flush and rename into place (``complete``), or leave only the temporary file. A
        write that fails here (the buffered lines meet a full disk) leaves no file and is a
        UserError naming --results."""
        if self.file.closed:
            return
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
        except OSError as exc:
            self.discard()
            raise write_error(OPTION, self.path, exc) from None
        if complete:
            commit(OPTION, self.temp, self.path)

    def discard(self) -> None:
        """Close and delete the temporary file: the lines written are not a complete run's."""
        with contextlib.suppress(OSError):
            self.file.close()
        self.temp.unlink(missing_ok=True)


def result_line(sequence: int, timestamp: float, decoded: Decoded | None) -> str:
    """One frame's JSON line, newline included."""
    record: dict[str, object] = {"sequence": sequence, "timestamp": round(timestamp, 6)}
    record.update(decoded.to_dict() if decoded is not None else {"task": None})
    return json.dumps(record, separators=(",", ":")) + "\n"
