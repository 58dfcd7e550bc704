"""``--config oakpipe.yaml``: the convert options in a file, in Luxonis' modelconverter words.

Users coming from modelconverter already have ``input_model``, ``shape``, ``mean_values``,
``scale_values``, ``encoding`` and ``rvc2.number_of_shaves`` in a YAML file; reading the
same keys lets them keep it. A file is also easier to review and version than a long
command line. Options given on the command line win over the file, so a file can be the
baseline and one run can change one thing.

The keys are those of ``oakpipe.options.CONVERT_OPTIONS`` (schema: ``config_schema``); the
values are handed to the options as the file typed them, never as command-line text.

Every mistake is one line naming the file and the key (``oakpipe.yaml:shape: ...``), and a
misspelt key names the closest valid one: a silently ignored ``mean_value`` is exactly
the "wrong mean" bug users report most.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oakpipe.errors import UserError

if TYPE_CHECKING:
    from pydantic import ValidationError

    from oakpipe.config_schema import ConfigBase


def load_config(path: str | Path) -> ConfigBase:
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
    from oakpipe.config_schema import SECTIONS

    model = SECTIONS.get(section, SECTIONS[()])
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


def file_values(config: ConfigBase) -> dict[str, Any]:
    """The file's values under the options' names (``oakpipe.options.CONVERT_OPTIONS``), as
    the file typed them (paths made absolute, ``encoding`` as reverse_input_channels); what the
    file does not set is left out. Coercion and checks are the options' own (``Option.value``)."""
    from oakpipe.options import CONVERT_OPTIONS

    values = {}
    for option in CONVERT_OPTIONS:
        value = config.get(option.yaml)
        if value is None:
            continue
        if option.kind == "path":
            value = config.path(value)
        elif option.kind == "encoding":
            value = value.reverse
        values[option.name] = value
    return values


def file_error(config: ConfigBase, key: str, flag: str, exc: UserError) -> UserError:
    """An option's UserError (worded for its flag) reworded for the file's key."""
    message = exc.message.replace(f" in {flag}", "").replace(f"{flag} ", "")
    return UserError(f"{config.source}:{key}: {message}", exc.hint)
