"""Built-in models, addressed by name on the command line (``oakpipe convert halve``).

Each entry says how to build the module (torch is imported only then), which source
files decide its output (for the cache key), and whether it takes a style image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


def _build_halve(options: "ConvertOptions") -> "nn.Module":
    from oakpipe.models.halve import Halve

    return Halve()


def _build_stylizer(options: "ConvertOptions") -> "nn.Module":
    from oakpipe.models.style_image import load_style_rgb
    from oakpipe.models.stylizer import build_stylizer

    size = (options.height, options.width)
    _require_multiple(size, 4, "stylizer")
    assert options.style is not None
    return build_stylizer(load_style_rgb(options.style), options.alpha, size)


def _build_adain(options: "ConvertOptions") -> "nn.Module":
    from oakpipe.errors import ModelError
    from oakpipe.models.adain import build_adain
    from oakpipe.models.style_image import load_style_rgb

    size = (options.height, options.width)
    _require_multiple(size, 8, "adain")
    assert options.style is not None
    try:
        return build_adain(load_style_rgb(options.style), options.alpha, options.weights_dir, size)
    except (ValueError, FileNotFoundError) as exc:
        raise ModelError(str(exc), "use the published vgg_normalised.pth and decoder.pth (pytorch-AdaIN)") from exc


def _require_multiple(size: tuple[int, int], factor: int, name: str) -> None:
    from oakpipe.errors import UserError

    if size[0] % factor or size[1] % factor:
        raise UserError(f"{name} needs a height and width divisible by {factor}, got {size[0]}x{size[1]}",
                        "use e.g. --input-shape 1,3,256,256")


BUILTINS: dict[str, BuiltinModel] = {
    "halve": BuiltinModel(
        name="halve",
        summary="returns its input divided by two (the picture comes out dimmer)",
        build=_build_halve,
        source_files=(HERE / "halve.py",),
    ),
    "stylizer": BuiltinModel(
        name="stylizer",
        summary="Magenta arbitrary style transfer (Ghiasi et al. 2017), camera-sized, style baked in",
        build=_build_stylizer,
        source_files=(HERE / "stylizer.py", HERE / "weights" / "stylizer_magenta.pt"),
        takes_style=True,
    ),
    "adain": BuiltinModel(
        name="adain",
        summary="AdaIN (Huang and Belongie 2017) as published: VGG-19 encoder, ~32 GMAC at 256x256",
        build=_build_adain,
        source_files=(HERE / "adain.py",),
        takes_style=True,
    ),
}
