"""The config file's schema, built from ``oakpipe.options.CONVERT_OPTIONS``: one pydantic field
per option's YAML key (``rvc2.number_of_shaves`` becomes a field of an ``rvc2`` section).

The schema checks the file's form (types, list lengths, ``imagenet``, ``encoding``); the
option's own rules (ranges, files) are the ones ``ConvertOptions`` applies, run on the
file's values by ``api.convert_options``. Kept apart from ``oakpipe.config_file`` so that
pydantic is imported only when a config file is given; a cached convert without one stays
as fast as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationInfo,
    create_model,
)

from oakpipe.options import CONVERT_OPTIONS
from oakpipe.preprocessing import IMAGENET_MEAN, IMAGENET_SCALE

Colour = Literal["RGB", "BGR"]


class Encoding(BaseModel):
    """``from``: the order the model was trained on; ``to``: the order the camera sends."""

    model_config = ConfigDict(extra="forbid")
    from_: Colour = Field("RGB", alias="from")
    to: Colour = "BGR"

    @property
    def reverse(self) -> bool:
        return self.from_ != self.to


def _rank(value: Any) -> Any:
    if isinstance(value, list) and len(value) != 4:
        raise ValueError(f"needs 4 dimensions [N, C, H, W], got {len(value)}: {value}")
    return value


def _imagenet(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, str):
        if value.strip().lower() != "imagenet":
            raise ValueError(f"{value!r} is neither a list of 3 numbers nor 'imagenet'")
        return IMAGENET_SCALE if info.field_name == "scale_values" else IMAGENET_MEAN
    if isinstance(value, list) and len(value) != 3:
        raise ValueError(f"needs 3 values (one per colour channel), got {len(value)}")
    return value


def _shorthand(value: Any) -> Any:
    """``encoding: RGB`` is modelconverter's shorthand for from = to = RGB."""
    return {"from": value, "to": value} if isinstance(value, str) else value


#: An option's ``kind`` -> the type its YAML value must have.
KINDS: dict[str, Any] = {
    "int": StrictInt, "float": StrictFloat, "number": StrictFloat | StrictInt, "str": StrictStr,
    "bool": StrictBool, "path": StrictStr,
    "shape": Annotated[list[StrictInt], BeforeValidator(_rank)],
    "channels": Annotated[tuple[StrictFloat, StrictFloat, StrictFloat], BeforeValidator(_imagenet)],
    "encoding": Annotated[Encoding, BeforeValidator(_shorthand)],
}


class ConfigBase(BaseModel):
    """The validated file; ``None`` means "not in the file" (the option's default applies)."""

    model_config = ConfigDict(extra="forbid")
    input_model: StrictStr | None = None
    #: The file itself (not a key): errors name it, relative paths start at its folder.
    _source: Path = PrivateAttr(Path("oakpipe.yaml"))

    @property
    def source(self) -> Path:
        return self._source

    @property
    def folder(self) -> Path:
        return self._source.resolve().parent

    def path(self, value: str | None) -> Path | None:
        """A path from the file, made absolute against the file's folder."""
        return None if value is None else (self.folder / Path(value).expanduser()).resolve()

    def model_spec(self) -> str | None:
        """``input_model`` with its file part resolved; built-in names stay as they are."""
        from oakpipe.models import BUILTINS

        spec = self.input_model
        if spec is None or spec in BUILTINS:
            return spec
        file_part, sep, attr = spec.rpartition(":")
        if sep and file_part.endswith(".py"):
            return f"{self.path(file_part)}:{attr}"
        return str(self.path(spec))

    def get(self, key: str) -> Any:
        """The value at a dotted key (``rvc2.number_of_shaves``), None when the file lacks it."""
        value: Any = self
        for part in key.split("."):
            value = getattr(value, part, None)
            if value is None:
                return None
        return value


def _build() -> tuple[type[ConfigBase], dict[tuple[str, ...], type[BaseModel]]]:
    """The file's model and its sections (for the "did you mean" of an unknown key)."""
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for option in CONVERT_OPTIONS:
        *section, key = option.yaml.split(".")
        fields = sections.setdefault(section[0], {}) if section else top
        fields[key] = (KINDS[option.kind] | None, None)
    models: dict[tuple[str, ...], type[BaseModel]] = {("encoding",): Encoding}
    for name, fields in sections.items():
        models[(name,)] = create_model(name.capitalize(), __config__=ConfigDict(extra="forbid"), **fields)
        top[name] = (models[(name,)] | None, None)
    models[()] = create_model("ConfigFile", __base__=ConfigBase, **top)
    return models[()], models  # type: ignore[return-value]


ConfigFile, SECTIONS = _build()
__all__ = ["ConfigFile", "SECTIONS", "Encoding"]
