"""Everything ``convert`` and ``verify`` are given, checked before the first stage runs.

A typo in ``--tolerance`` or an ``--image`` that is not an image used to be found after
the export had run for 10-20 s; an ``--out`` that cannot be written, after the first
stage. Here each option, file and number is checked first, so a bad one costs nothing
and leaves nothing. Only the files the user gave are opened (not our own data), so a
cached convert stays fast.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from oakpipe.errors import UserError
from oakpipe.models import BUILTINS
from oakpipe.models.source import ModelSource
from oakpipe.options import ConvertOptions

#: The style a style-transfer built-in takes when no --style is given (public domain, see styles/README.md).
DEFAULT_STYLE = Path(__file__).resolve().parent / "models" / "styles" / "hubble_deep_field.jpg"


def check_before_work(options: ConvertOptions, source: ModelSource, folder: Path) -> ConvertOptions:
    """The options to run with (a default style filled in), or a UserError about the first bad one."""
    from oakpipe.userpaths import check_output_folder

    options = check_model_files(options, source)
    if options.style is not None:
        from oakpipe.models.style_image import load_style_rgb

        load_style_rgb(options.style)  # readable, colour, big enough
    if options.verify and options.verify_image is not None and source.kind != "ir":
        from oakpipe.verify.samples import read_colour_image

        read_colour_image(options.verify_image, "--image")
    if options.tolerance:
        check_tolerance(options.tolerance)
    check_output_folder(folder)
    return options


def check_model_files(options: ConvertOptions, source: ModelSource) -> ConvertOptions:
    """--weights, --style and --weights-dir only where the model uses them."""
    builtin = BUILTINS.get(source.name) if source.kind == "builtin" else None
    takes_style = builtin is not None and builtin.takes_style
    if options.weights is not None and source.kind not in ("python", "module"):
        what = f"the built-in {source.name}" if builtin else f"an {source.kind.upper()} model"
        hint = ("its weights are built in; for adain's published weights use --weights-dir"
                if builtin else "the weights are inside the file already")
        raise UserError(f"--weights is for a file.py:NAME model, not {what}", f"drop --weights ({hint})")
    if options.style is not None and not takes_style:
        raise UserError(f"{source.spec} takes no style image", "drop --style, or use the stylizer or adain model")
    if options.weights_dir is not None and source.name != "adain":
        raise UserError(f"--weights-dir is for the adain model, not {source.spec}", "drop --weights-dir")
    if takes_style and options.style is None:
        return replace(options, style=DEFAULT_STYLE)
    return options


def check_tolerance(text: str) -> None:
    """Parse --tolerance now (the verifier parses it again) and refuse NaN, inf and negatives."""
    from oakpipe.verify.core import parse_tolerances

    tolerances = parse_tolerances(text)
    for stage, value in {**tolerances.min_psnr, **tolerances.max_relative}.items():
        if not math.isfinite(value) or value < 0:
            raise UserError(f"--tolerance {stage}={value} is not a finite number >= 0",
                            "e.g. --tolerance fp16=30 (dB) or fp16=0.05 (relative)")
