"""The config file's schema: pydantic models that say what each key may hold.

Kept apart from ``oakpipe.config_file`` so that pydantic is imported only when a
``--config`` is given; a cached convert without one stays as fast as before.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictFloat, StrictInt, StrictStr, field_validator

from oakpipe.preprocessing import IMAGENET_MEAN, IMAGENET_SCALE

Colour = Literal["RGB", "BGR"]


class Encoding(BaseModel):
    """``from``: the order the model was trained on; ``to``: the order the camera sends."""

    model_config = ConfigDict(extra="forbid")
    from_: Colour = Field("RGB", alias="from")
    to: Colour = "BGR"


class Rvc2(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number_of_shaves: StrictInt | None = None

    @field_validator("number_of_shaves")
    @classmethod
    def _range(cls, value: int | None) -> int | None:
        from oakpipe.options import MAX_SHAVES

        if value is not None and not 1 <= value <= MAX_SHAVES:
            raise ValueError(f"{value} is outside 1..{MAX_SHAVES} (an RVC2 has 16 SHAVEs; 6 to 8 is usual)")
        return value


class ConfigFile(BaseModel):
    """The validated file; ``None`` means "not in the file" (the CLI default applies)."""

    model_config = ConfigDict(extra="forbid")
    input_model: StrictStr | None = None
    shape: list[StrictInt] | None = None
    mean_values: tuple[StrictFloat, StrictFloat, StrictFloat] | None = None
    scale_values: tuple[StrictFloat, StrictFloat, StrictFloat] | None = None
    encoding: Encoding | None = None
    rvc2: Rvc2 | None = None
    opset: StrictInt | None = None
    weights: StrictStr | None = None
    style: StrictStr | None = None
    alpha: StrictFloat | None = None
    output_dir: StrictStr | None = None
    compile_timeout: StrictFloat | StrictInt | None = None  # seconds (--compile-timeout)
    #: The file itself (not a key): errors name it, relative paths start at its folder.
    _source: Path = PrivateAttr(Path("oakpipe.yaml"))

    @property
    def source(self) -> Path:
        return self._source

    @property
    def folder(self) -> Path:
        return self._source.resolve().parent

    @field_validator("shape")
    @classmethod
    def _rank(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and len(value) != 4:
            raise ValueError(f"needs 4 dimensions [N, C, H, W], got {len(value)}: {value}")
        return value

    @field_validator("opset")
    @classmethod
    def _opset(cls, value: int | None) -> int | None:
        from oakpipe.options import SUPPORTED_OPSETS

        if value is not None and value not in SUPPORTED_OPSETS:
            raise ValueError(f"opset {value} is not supported by the MyriadX toolchain; use 11, 12 or 13")
        return value

    @field_validator("alpha")
    @classmethod
    def _alpha(cls, value: float | None) -> float | None:
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"{value} is outside [0, 1]")
        return value

    @field_validator("mean_values", "scale_values", mode="before")
    @classmethod
    def _imagenet(cls, value: Any, info) -> Any:
        if isinstance(value, str):
            if value.strip().lower() != "imagenet":
                raise ValueError(f"{value!r} is neither a list of 3 numbers nor 'imagenet'")
            return IMAGENET_SCALE if info.field_name == "scale_values" else IMAGENET_MEAN
        if isinstance(value, list) and len(value) != 3:
            raise ValueError(f"needs 3 values (one per colour channel), got {len(value)}")
        return value

    @field_validator("mean_values", "scale_values")
    @classmethod
    def _finite(cls, value: tuple[float, float, float] | None) -> tuple[float, float, float] | None:
        if value is not None and not all(math.isfinite(v) for v in value):
            raise ValueError(f"{list(value)} holds NaN or infinity; give 3 finite numbers")
        return value

    @field_validator("encoding", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """``encoding: RGB`` is modelconverter's shorthand for from = to = RGB."""
        return {"from": value, "to": value} if isinstance(value, str) else value

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
