"""The ``run`` hook for task models: decode, draw, and write ``--results``, per frame.

Chosen by the export's NN Archive: an archive with a head (a YOLO detector, a classifier)
is decoded by the parser it names; one without keeps ``run``'s generic view (image, heat
map, numbers). Both backends call it with their ``Inferred`` frames, so the device and the
emulator decode and draw alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from oakpipe.errors import UserError
from oakpipe.tasks.decode import Decoded, TaskDecoder


class TaskStep:
    def __init__(self, decoder: TaskDecoder, results_path: Path | None) -> None:
        from oakpipe.tasks.results import ResultsWriter

        self.decoder = decoder
        self.results = ResultsWriter(results_path) if results_path is not None else None
        self.last: Decoded | None = None

    @classmethod
    def open(cls, export, options) -> "TaskStep | None":
        """A step for the export's archive if its config has a head; None (the generic view) otherwise."""
        results = getattr(options, "results", None)
        try:
            archive = Path(export.archive)
        except (KeyError, AttributeError):  # an export without an archive stage (e.g. an imported archive)
            archive = None
        decoder = TaskDecoder.for_archive(archive, conf=getattr(options, "conf", None)) if (
            archive is not None and archive.is_file()) else None
        if decoder is None:
            if results is not None:
                raise UserError(f"--results {results}: this model's archive names no parser run decodes",
                                "use it with a detector, segmenter, pose model or classifier export")
            return None
        return cls(decoder, results)

    def decode(self, item, begun: float) -> Decoded:
        """The frame's outputs decoded (and written to ``--results``)."""
        decoded = self.decoder.decode(item.outputs)
        self.last = decoded
        if self.results is not None:
            self.results.write(item.index, item.started - begun, decoded)
        return decoded

    def draw(self, item, decoded: Decoded) -> tuple[np.ndarray, str]:
        """-> (the frame with the results drawn on it, what the view shows)."""
        from oakpipe.tasks.draw import draw

        what = {"classify": f"top-{len(decoded.top)} labels", "segment-semantic": "class map",
                "depth": "depth map"}.get(decoded.task, f"{len(decoded.detections)} detections")
        return draw(item.frame, decoded), what

    def close(self) -> UserError | None:
        """Finish ``--results``; -> its failure (a UserError), or None, as ``Outputs.close`` reports."""
        if self.results is None:
            return None
        try:
            self.results.close()
        except UserError as exc:
            return exc
        return None
