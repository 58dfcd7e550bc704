"""What ``run`` runs: an export folder or an NN Archive, as one type.

The pipeline, the backends and the decoder read a model through ``RunnableModel`` (an
``Export`` has it, and so has an archive's ``ArchiveModel``), so they do not know which of
the two they were given. ``oakpipe.live.export_check.open_for_run`` opens either. This
module imports nothing of ``live/``, so every module there can depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from oakpipe.manifest_schema import ExportManifest
from oakpipe.preprocessing import Preprocessing


class RunnableModel(Protocol):
    """What running reads from a model: its name, blob (device), IR (host) and typed manifest."""

    @property
    def name(self) -> str: ...

    @property
    def folder(self) -> Path: ...

    @property
    def blob(self) -> Path: ...

    @property
    def ir(self) -> Path: ...

    @property
    def record(self) -> ExportManifest: ...


@dataclass(frozen=True)
class RunnableExport:
    """A model plus what running it needs: the frame size and the camera contract."""

    export: RunnableModel
    preprocessing: Preprocessing
    width: int
    height: int

    @property
    def name(self) -> str:
        return self.export.name
