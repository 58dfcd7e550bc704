"""The Python API: what the CLI does, as two functions with keyword options.

    >>> import oakpipe
    >>> export = oakpipe.convert("halve", input_shape=(1, 3, 256, 256), shaves=6)
    >>> export = oakpipe.convert(my_module, name="mynet", mean_values="imagenet", scale_values="imagenet")
    >>> summary = oakpipe.run(export, source="sample", frames=60, display="none")

Keywords take the CLI's names (``mean_values``, ``reverse_input_channels``...: the names in
``oakpipe.options.CONVERT_OPTIONS``) and the same forms (strings like ``"1,3,256,256"`` or
``"imagenet"``, or sequences); ``config="oakpipe.yaml"`` reads a modelconverter-style file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oakpipe.convert import Export
from oakpipe.convert import convert as convert_with_options
from oakpipe.errors import UserError
from oakpipe.options import CONVERT_OPTIONS, OPTIONS_BY_NAME, ConvertOptions
from oakpipe.preprocessing import CONTRACT_FIELDS, Preprocessing, default_contract
from oakpipe.progress import Progress


def convert_options(model: str | Path | None, config: str | Path | None = None, *, what: str = "model",
                    **options: Any) -> ConvertOptions:
    """ConvertOptions from keywords named as in ``oakpipe.options.CONVERT_OPTIONS``; ``config``
    (a modelconverter-style YAML file, as ``--config``) fills every keyword left out or None,
    and ``model`` when that is None; what neither gives is the option's default (for the
    camera contract: the model's declaration, resolved later by ``resolve_contract``).
    ``what`` names the model in the error when there is none (the CLI's "MODEL")."""
    unknown = sorted(set(options) - set(OPTIONS_BY_NAME) - {"verify_image"})
    if unknown:
        raise UserError(f"oakpipe.convert: got an unexpected keyword argument {unknown[0]!r}",
                        "see help(oakpipe.convert) for the keywords")
    image = options.pop("verify_image", None)  # ConvertOptions' own name for ``image``
    if options.get("image") is None:
        options["image"] = image
    values = {name: OPTIONS_BY_NAME[name].value(raw) for name, raw in options.items() if raw is not None}
    if config is not None:
        model = _fill_from_file(Path(config), model, values)
    if model is None:
        where = f"{config}: no input_model and no {what}" if config is not None else f"no {what} given"
        cli = what != "model"
        raise UserError(where if cli else f"oakpipe.convert: {where}", "name the model (halve, file.py:NAME, "
                        f"model.onnx) or set input_model in {'--config' if cli else 'the config file'}")
    return _options_of(str(model), values)


def _fill_from_file(path: Path, model: str | Path | None, values: dict[str, Any]) -> str | Path | None:
    """Put the file's value of every option not in ``values`` there (checked, errors naming the
    file and key); the model from ``input_model`` when none was given."""
    from oakpipe.config_file import file_error, file_values, load_config

    config = load_config(path)
    for name, raw in file_values(config).items():
        if name not in values:
            option = OPTIONS_BY_NAME[name]
            try:
                values[name] = option.value(raw)
            except UserError as exc:
                raise file_error(config, option.yaml, option.flag, exc) from None
    return model if model is not None else config.model_spec()


def _options_of(model: str, values: dict[str, Any]) -> ConvertOptions:
    """The checked values as ConvertOptions; the contract fields not given are oakpipe's
    defaults for ``model`` and are marked as such (``contract_defaults``)."""
    defaults = dict(zip(CONTRACT_FIELDS, default_contract(model)))
    contract, fields = {}, {}
    for option in CONVERT_OPTIONS:
        if option.contract is not None:
            given = values.get(option.name)
            contract[option.contract] = option.value(defaults[option.contract]) if given is None else given
        elif option.name in values:
            fields[option.target] = values[option.name]
    unset = frozenset(o.contract for o in CONVERT_OPTIONS if o.contract is not None and o.name not in values)
    return ConvertOptions(model=model, preprocessing=Preprocessing(**contract), contract_defaults=unset, **fields)


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
