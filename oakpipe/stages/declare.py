"""What a stage says about itself, and the order that follows from it.

A stage declares its name (its manifest record and progress label), the stages whose
artifacts it consumes, the options that decide its output, its entry modules (whose
import closure, computed by oakpipe.codehash, is its code key) and two functions: the
artifact names it writes and the body that writes them. ``oakpipe.convert`` derives the
order, cache keys, skipping, manifest records and progress lines from these; the list
itself is ``oakpipe.stages.registry.STAGES``.

This module imports nothing of oakpipe: the declarations must be readable by a cached
convert, which imports neither torch nor OpenVINO.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The functions below take the runner (``oakpipe.convert.StageRunner``): its options,
#: source, manifest and model. ``Any``, so that this module imports nothing of oakpipe.


@dataclass(frozen=True)
class Stage:
    """One stage of convert, as the runner needs to know it."""

    name: str
    consumes: tuple[str, ...]  #: stages whose artifacts it reads (their digests key it)
    options: tuple[str, ...]  #: ConvertOptions fields that decide its output (keyed)
    code: tuple[str, ...]  #: entry modules: their import closure is its code key
    tools: tuple[str, ...]  #: packages whose versions key it (oakpipe.versions)
    artifacts: Callable[[Any], list[str]]  #: (runner) -> the file names it writes
    body: Callable[[Any, dict[str, Path]], dict]  #: (runner, temporary paths) -> its record's info
    key: Callable[[Any], dict] = lambda runner: {}  #: key material beyond the above (the model source)
    applies: Callable[[Any], bool] = lambda runner: True  #: whether it runs for this model and these options
    skip: Callable[[Any], tuple[str, str] | None] = lambda runner: None  #: (why, what to do) to skip it here
    report_only: bool = False  #: it reports on the export (verify): it never marks the export incomplete
    done: Callable[[Any, dict], None] = lambda runner, info: None  #: lines to print after it
    functions: tuple[Callable, ...] = field(default=())  #: its own code besides the closure (hashed by source)

    def own_code(self) -> tuple[Callable, ...]:
        """The functions this declaration runs, whose source is part of its code key."""
        return (self.artifacts, self.body, self.key, self.applies, self.skip, self.done, *self.functions)


def stage_order(stages: Sequence[Stage]) -> list[Stage]:
    """The stages with each after every stage it consumes (registration order otherwise).

    Two declarations may share a name (the device graph from ONNX, or from a user's IR):
    either produces it. A consumed name nothing produces, or a cycle, is a programming error."""
    produced = {s.name for s in stages}
    for stage in stages:
        missing = set(stage.consumes) - produced
        if missing:
            raise ValueError(f"stage {stage.name} consumes {sorted(missing)}, which no stage produces")
    ordered: list[Stage] = []
    pending = list(stages)
    while pending:
        waiting = {s.name for s in pending}  # a name is produced once every declaration of it is placed
        ready = next((s for s in pending if not waiting & set(s.consumes)), None)
        if ready is None:
            raise ValueError(f"stages {sorted(waiting)} consume each other")
        ordered.append(ready)
        pending.remove(ready)
    return ordered
