"""``run --results out.jsonl``: one JSON line per frame a program can read.

Each line: ``sequence`` (frame index), ``timestamp`` (seconds since the run began, when the
frame left the source), ``task`` and the decoded outputs (boxes in pixels of the frame shown,
class id, name, score; keypoints; each instance's mask, or each class's pixels of a class map,
as COCO run-length encoding (``oakpipe.tasks.rle``); or the top-k). The file is written under a temporary name beside the
final one and renamed when the run ends, so a reader never sees half a file under the final
name; a run that dies leaves only the temporary file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from oakpipe.errors import UserError
from oakpipe.tasks.decode import Decoded


class ResultsWriter:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in (".jsonl", ".ndjson"):
            raise UserError(f"--results {self.path}: JSON lines are written", "name it e.g. results.jsonl")
        self.temp = self.path.with_name(f".{self.path.name}.partial-{os.getpid()}")
        try:
            self.file = open(self.temp, "w", encoding="utf-8")
        except OSError as exc:
            raise UserError(f"--results {self.path}: cannot write there ({exc.strerror})", "pick another path") from exc
        self.lines = 0

    def write(self, sequence: int, timestamp: float, decoded: Decoded | None) -> None:
        self.file.write(result_line(sequence, timestamp, decoded))
        self.lines += 1

    def close(self, complete: bool = True) -> None:
        """Flush and rename into place (``complete``), or leave only the temporary file."""
        if self.file.closed:
            return
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        if complete:
            os.replace(self.temp, self.path)


def result_line(sequence: int, timestamp: float, decoded: Decoded | None) -> str:
    """One frame's JSON line, newline included."""
    record: dict[str, object] = {"sequence": sequence, "timestamp": round(timestamp, 6)}
    record.update(decoded.to_dict() if decoded is not None else {"task": None})
    return json.dumps(record, separators=(",", ":")) + "\n"
