"""The Python API: what the CLI does, as two functions with keyword options.

    >>> import oakpipe
    >>> export = oakpipe.convert("halve", input_shape=(1, 3, 256, 256), shaves=6)
    >>> export = oakpipe.convert(my_module, name="mynet", mean_values="imagenet", scale_values="imagenet")
    >>> summary = oakpipe.run(export, source="sample", frames=60, display="none")

Keywords take the CLI's names (``mean_values``, ``reverse_input_channels``...) and the
same forms (strings like ``"1,3,256,256"`` or ``"imagenet"``, or sequences).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from oakpipe.convert import Export
from oakpipe.convert import convert as convert_with_options
from oakpipe.errors import UserError
from oakpipe.options import ConvertOptions, parse_input_shape
from oakpipe.preprocessing import CONTRACT_FIELDS, Preprocessing, default_contract, parse_channel_values
from oakpipe.progress import Progress

CONTRACT_KEYS = ("mean_values", "scale_values", "reverse_input_channels")  # in CONTRACT_FIELDS' order


def _channel_values(value: str | Sequence[float], option: str) -> tuple[float, float, float]:
    text = value if isinstance(value, str) else ",".join(str(v) for v in value)
    return parse_channel_values(text, option)


def convert_options(model: str | Path | None, config: str | Path | None = None, **options: Any) -> ConvertOptions:
    """ConvertOptions from CLI-style keywords; ``config`` (a modelconverter-style YAML file, as
    ``--config``) fills every keyword left out or None, and ``model`` when that is None."""
    if config is not None:
        from oakpipe.config_file import config_values, load_config

        for key, value in config_values(load_config(Path(config))).items():
            if key == "model":
                model = model if model is not None else value
            elif options.get(key) is None:
                options[key] = value
    if model is None:
        raise UserError("oakpipe.convert: no model given", "pass the model, or a config file with input_model")
    mean, scale, reverse = default_contract(str(model))
    given = {key: options.pop(key, None) for key in CONTRACT_KEYS}  # None: not given, use the default
    pre = Preprocessing(
        mean=_channel_values(given["mean_values"] or mean, "--mean-values"),
        scale=_channel_values(given["scale_values"] or scale, "--scale-values"),
        reverse_input_channels=reverse if given["reverse_input_channels"] is None else given["reverse_input_channels"],
    )
    shape = options.pop("input_shape", None)
    if shape is not None:
        options["input_shape"] = parse_input_shape(shape if isinstance(shape, str) else ",".join(map(str, shape)))
    if "image" in options:
        options["verify_image"] = options.pop("image")
    for key in ("weights", "style", "weights_dir", "out", "verify_image", "labels"):
        if options.get(key) is not None:
            options[key] = Path(options[key])
    defaults = frozenset(field for field, key in zip(CONTRACT_FIELDS, CONTRACT_KEYS) if given[key] is None)
    try:
        return ConvertOptions(model=str(model), preprocessing=pre, contract_defaults=defaults, **options)
    except TypeError as exc:
        raise UserError(f"oakpipe.convert: {exc}", "see help(oakpipe.convert) for the keywords") from None


def convert(model: Any = None, progress: bool | Progress = False, *, name: str | None = None, **options: Any) -> Export:
    """Convert ``model`` (a built-in name, a ``file.py:NAME``, an ``.onnx``/``.xml`` path, an
    ``nn.Module`` object, or a ready ConvertOptions) and return the Export. ``progress``:
    True prints a line per stage on stderr (or pass a Progress). ``config="oakpipe.yaml"``
    reads the options (and, if ``model`` is None, the model) from a modelconverter-style file;
    keywords given here win over it."""
    from oakpipe.extras import require_convert_extra

    require_convert_extra("convert")  # before `from torch import nn` below: one line, not an ImportError
    reporter = progress if isinstance(progress, Progress) else Progress(quiet=not progress)
    if isinstance(model, ConvertOptions):
        return convert_with_options(model, reporter)
    if model is None or isinstance(model, (str, Path)):
        return convert_with_options(convert_options(model, **options), reporter)
    from torch import nn

    if not isinstance(model, nn.Module):
        raise UserError(f"oakpipe.convert got a {type(model).__name__}",
                        "pass an nn.Module, a model name or a path")
    from oakpipe.models.source import source_of_module

    source = source_of_module(model, name)  # not .eval(): the stages pin eval and restore its flags
    options.setdefault("out", Path("exports") / source.name)
    return convert_with_options(convert_options(source.spec, **options), reporter, source=source)


def run(export: Export | str | Path, *, progress: bool = False, **options: Any):
    """Run an export (an Export or its folder) live; returns the RunSummary."""
    from oakpipe.live.options import RunOptions
    from oakpipe.live.pipeline import run_export

    folder = export.folder if isinstance(export, Export) else Path(export)
    for key in ("record", "save_frames", "strip"):
        if options.get(key) is not None:
            options[key] = Path(options[key])
    try:
        run_options = RunOptions(**options)
    except TypeError as exc:
        raise UserError(f"oakpipe.run: {exc}", "see help(oakpipe.run) for the keywords") from None
    return run_export(folder, run_options, Progress(quiet=not progress))
