"""Built-in models, addressed by name on the command line (``oakpipe convert halve``).

Each entry says how to build the module (torch is imported only then), which source
files decide its output (for the cache key), and whether it takes a style image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

    from oakpipe.options import ConvertOptions

HERE = Path(__file__).parent


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    summary: str
    build: Callable[["ConvertOptions"], "nn.Module"]
    source_files: tuple[Path, ...]
    takes_style: bool = False
    extra_files: tuple[Path, ...] = field(default=())


def _build_halve(options: "ConvertOptions") -> "nn.Module":
    from oakpipe.models.halve import Halve

    return Halve()


BUILTINS: dict[str, BuiltinModel] = {
    "halve": BuiltinModel(
        name="halve",
        summary="returns its input divided by two (the picture comes out dimmer)",
        build=_build_halve,
        source_files=(HERE / "halve.py",),
    ),
}
