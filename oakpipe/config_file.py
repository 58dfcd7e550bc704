"""``--config oakpipe.yaml``: the convert options in a file, in Luxonis' modelconverter words.

Users coming from modelconverter already have ``input_model``, ``shape``, ``mean_values``,
``scale_values``, ``encoding`` and ``rvc2.number_of_shaves`` in a YAML file; reading the
same keys lets them keep it. A file is also easier to review and version than a long
command line. Options given on the command line win over the file, so a file can be the
baseline and one run can change one thing.

Every mistake is one line naming the file and the key (``oakpipe.yaml:shape: ...``), and a
misspelt key names the closest valid one: a silently ignored ``mean_value`` is exactly
the "wrong mean" bug users report most.
"""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oakpipe.errors import UserError

#: Where the option-tracking actions record the dests given on the command line.
EXPLICIT = "_oakpipe_explicit"

if TYPE_CHECKING:
    from pydantic import ValidationError

    from oakpipe.config_schema import ConfigFile


def load_config(path: str | Path) -> ConfigFile:
    """Read and validate a config file, or raise a one-line UserError naming file and key."""
    import yaml
    from pydantic import ValidationError

    from oakpipe.config_schema import ConfigFile

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"--config {path}: {exc.strerror or exc}", "check the path") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}{where}: not valid YAML: {problem}", "fix the YAML syntax") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of keys (input_model: ..., shape: ...), "
                        f"got {type(data).__name__}", "see oakpipe convert --help for the keys")
    try:
        config = ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise _one_line(path, exc) from None
    config._source = path
    return config


def _section_keys(section: tuple) -> list[str]:
    from oakpipe.config_schema import ConfigFile, Encoding, Rvc2

    model = {(): ConfigFile, ("encoding",): Encoding, ("rvc2",): Rvc2}.get(section, ConfigFile)
    return [f.alias or name for name, f in model.model_fields.items()]  # type: ignore[attr-defined]


def _one_line(path: Path, exc: ValidationError) -> UserError:
    """The first problem as 'file:key: what is wrong', with a hint."""
    error = exc.errors()[0]
    loc = tuple(str(part) for part in error["loc"] if not isinstance(part, int))
    key = ".".join(loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        valid = _section_keys(loc[:-1])
        close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.5)
        hint = f"did you mean '{'.'.join(loc[:-1] + (close[0],))}'?" if close else f"valid keys: {', '.join(valid)}"
        return UserError(f"{path}:{key}: unknown key", hint)
    message = error["msg"].removeprefix("Value error, ")
    got = error.get("input")
    if error["type"] not in ("value_error",) and not isinstance(got, dict):
        message += f" (got {got!r})"
    return UserError(f"{path}:{key}: {message}", "see the config file keys in oakpipe convert --help")


def explicit_options(args: argparse.Namespace) -> set[str]:
    """The argparse dests the user typed (recorded by ``track_explicit``'s actions)."""
    return set(getattr(args, EXPLICIT, set()))


def track_explicit(parser: argparse.ArgumentParser) -> None:
    """Make every option of ``parser`` record its dest when given on the command line.

    Comparing a value with the parser default cannot tell ``--opset 12`` (typed, wins over
    the file) from no ``--opset`` at all (the file wins); argparse only calls an action for
    what was typed, so the action is where to record it.
    """
    for action in parser._actions:
        if action.option_strings and not getattr(action, "_oakpipe_tracked", False):
            action.__class__ = _tracking(type(action))


def _tracking(base: type[argparse.Action]) -> type[argparse.Action]:
    class Tracking(base):  # type: ignore[valid-type, misc]
        _oakpipe_tracked = True

        def __call__(self, parser, namespace, values, option_string=None):
            vars(namespace).setdefault(EXPLICIT, set()).add(self.dest)
            super().__call__(parser, namespace, values, option_string)

    Tracking.__name__ = f"Tracking{base.__name__}"
    return Tracking


def apply_config(args: argparse.Namespace) -> argparse.Namespace:
    """A copy of ``args`` with ``args.config``'s values filled in where nothing was typed.

    The file's values take the place of the parser's defaults, in the command line's own
    form, so ``convert_options`` builds and validates ConvertOptions exactly as it does
    without a file (the contract defaults for an IR included). Raises a UserError when
    neither MODEL nor the file's ``input_model`` names a model.
    """
    merged = argparse.Namespace(**vars(args))
    path = getattr(args, "config", None)
    if path is not None:
        vars(merged).update(file_values(load_config(path), args))
    if not getattr(merged, "model", None):
        where = f"{path}: no input_model and no MODEL" if path is not None else "no MODEL given"
        raise UserError(where, "name the model (halve, file.py:NAME, model.onnx) or set input_model in --config")
    return merged


def file_values(config: ConfigFile, args: argparse.Namespace) -> dict[str, Any]:
    """argparse dests -> values from the file, leaving out every option typed on the command line."""
    typed = explicit_options(args)
    values = {dest: v for dest, v in config_values(config, check_shape="input_shape" not in typed).items()
              if dest not in typed}
    if getattr(args, "model", None) is not None:
        values.pop("model", None)
    return values


def config_values(config: ConfigFile, check_shape: bool = True) -> dict[str, Any]:
    """The file's values under the names the CLI's argparse dests and the Python API's keywords
    share (``mean_values``, ``shaves``, ``model``...), in the command line's string form; what
    the file does not set is left out. One mapping for both entry points."""
    from oakpipe.options import validate_input_shape

    if config.shape is not None and check_shape:
        try:
            validate_input_shape(tuple(config.shape))
        except UserError as exc:
            raise UserError(f"{config.source}:shape: {exc.message.replace(' in --input-shape', '').replace('--input-shape ', '')}", exc.hint) from None
    join = lambda values: None if values is None else ",".join(repr(v) for v in values)  # noqa: E731
    values = {
        "input_shape": join(config.shape), "opset": config.opset, "alpha": config.alpha,
        "mean_values": join(config.mean_values), "scale_values": join(config.scale_values),
        "reverse_input_channels": None if config.encoding is None else config.encoding.from_ != config.encoding.to,
        "shaves": config.rvc2.number_of_shaves if config.rvc2 else None,
        "weights": config.path(config.weights), "style": config.path(config.style),
        "out": config.path(config.output_dir), "compile_timeout": config.compile_timeout,
    }
    values = {dest: v for dest, v in values.items() if v is not None}
    if config.input_model is not None:
        values["model"] = config.model_spec()
    return values
