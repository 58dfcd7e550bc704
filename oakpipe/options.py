"""The convert options, declared once: each ``Option`` below is the one place that says an
option's name (the Python API keyword and argparse dest), default, CLI flag, help, YAML key
(modelconverter's name where it has one) and checks. ``cli.add_convert_options`` builds the
flags from it, ``config_schema`` the YAML schema, ``api.convert_options`` the keywords and
their precedence; ``ConvertOptions`` is the frozen, validated result passed whole to every stage.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oakpipe.errors import UserError
from oakpipe.preprocessing import Preprocessing, parse_channel_values

DEFAULT_INPUT_SHAPE = (1, 3, 256, 256)
SUPPORTED_OPSETS = (11, 12, 13)
MAX_SHAVES = 16
COMPILERS = ("offline", "blobconverter")  # offline: the private 2021.4 toolchain; blobconverter: Luxonis' web service


def parse_input_shape(text: str) -> tuple[int, int, int, int]:
    """``1,3,256,256`` or ``[1,3,256,256]`` -> a validated NCHW tuple."""
    parts = [p for p in text.strip().strip("[]()").replace(" ", ",").split(",") if p]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise UserError(
            f"--input-shape {text!r} is not a list of whole numbers",
            "write it as N,C,H,W, e.g. --input-shape 1,3,256,256",
        ) from None
    return validate_input_shape(dims)


def validate_input_shape(dims: tuple[int, ...]) -> tuple[int, int, int, int]:
    if len(dims) != 4:
        raise UserError(
            f"--input-shape needs 4 dimensions (N,C,H,W), got {len(dims)}: {list(dims)}",
            "the camera feeds one NCHW image, e.g. --input-shape 1,3,256,256",
        )
    n, c, h, w = dims
    if n != 1:
        raise UserError(f"batch size {n} in --input-shape", "the camera sends one frame at a time: use N=1")
    if c != 3:
        raise UserError(
            f"{c} channels in --input-shape",
            "the camera sends 3-channel colour frames: use C=3 (convert a grey model inside it)",
        )
    if not (8 <= h <= 4000 and 8 <= w <= 4000):
        raise UserError(f"input size {h}x{w} is out of range", "use a height and width between 8 and 4000")
    return (n, c, h, w)


def check_finite_contract(pre: Preprocessing) -> None:
    """NaN or infinity in the contract would bake a device graph that outputs NaN."""
    for option, values in (("--mean-values", pre.mean), ("--scale-values", pre.scale)):
        check_finite(option, values)


def check_finite(option: str, values: tuple[float, ...]) -> None:
    if not all(math.isfinite(v) for v in values):
        raise UserError(f"{option} {','.join(map(str, values))} holds NaN or infinity",
                        f"give three finite numbers, e.g. {option} 0,0,0 (or imagenet)")


TASK_CHOICES = ("detect", "segment", "pose", "classify", "segment-semantic", "depth")


def check_task(task: str | None, labels: Path | None) -> None:
    _choice("--task", TASK_CHOICES)(task)
    if labels is not None and task == "depth":
        raise UserError("--labels names classes, and a depth model has none", "drop --labels")
    if labels is not None and Path(labels).is_file():  # a missing file is the path check's to say
        from oakpipe.tasks.labels import read_labels

        read_labels(Path(labels))  # empty or binary: refused before any stage runs


def shape_value(value: str | Sequence[int]) -> tuple[int, int, int, int]:
    """``"1,3,256,256"`` (the command line) or ``[1, 3, 256, 256]`` (the API, the YAML file)."""
    return parse_input_shape(value) if isinstance(value, str) else validate_input_shape(tuple(value))


def channel_values(flag: str) -> Callable[[Any], tuple[float, float, float]]:
    """``"1,2,3"``, ``"imagenet"`` or three numbers -> a checked finite triple for ``flag``."""

    def parse(value: Any) -> tuple[float, float, float]:
        text = value if isinstance(value, str) else ",".join(repr(float(v)) for v in value)
        values = parse_channel_values(text, flag)
        check_finite(flag, values)
        return values

    return parse


def _check_opset(opset: int) -> None:
    if opset not in SUPPORTED_OPSETS:
        raise UserError(f"--opset {opset} is not supported by the MyriadX toolchain here",
                        "use --opset 11, 12 or 13 (12 is the default)")


def _check_shaves(shaves: int) -> None:
    if not 1 <= shaves <= MAX_SHAVES:
        raise UserError(f"--shaves {shaves} is outside 1..{MAX_SHAVES}",
                        "an RVC2 has 16 SHAVE cores; 6 to 8 is usual for one network")


def _check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise UserError(f"--alpha {alpha} is outside [0, 1]", "0 keeps the content, 1 is full style")


def _check_timeout(seconds: float) -> None:
    if not 0 < seconds < math.inf:  # NaN fails both comparisons
        raise UserError(f"--compile-timeout {seconds} is not a positive, finite number of seconds",
                        "e.g. --compile-timeout 1800 for a large model")


def _choice(flag: str, choices: Sequence[str]) -> Callable[[str | None], None]:
    def check(value: str | None) -> None:
        if value is not None and value not in choices:
            raise UserError(f"{flag} {value!r} is unknown", f"use one of: {', '.join(choices)}")

    return check


def _file(flag: str, folder: bool = False) -> Callable[[Path | None], None]:
    def check(path: Path | None) -> None:
        if path is not None and not (Path(path).is_dir() if folder else Path(path).is_file()):
            raise UserError(f"{flag} {path}: no such {'folder' if folder else 'file'}", "check the path")

    return check


def _path(value: Any) -> Path | None:
    return None if value is None else Path(value)


@dataclass(frozen=True)
class Option:
    """One convert option, declared once (see the module docstring for what derives from it)."""

    name: str  #: API keyword and argparse dest
    flag: str  #: the command-line flag
    help: str
    yaml: str  #: the config file key; "rvc2.number_of_shaves" is a key in a section
    kind: str  #: the YAML form: int, float, number, str, bool, path, shape, channels, encoding
    default: Any = None
    attr: str | None = None  #: the ConvertOptions field when not ``name``; "preprocessing.X" for the contract
    cli: dict[str, Any] = field(default_factory=dict)  #: add_argument keywords beyond flag, dest and help
    coerce: Callable[[Any], Any] | None = None  #: a typed, API or file value -> the field's type
    check: Callable[[Any], None] | None = None  #: raises a UserError naming ``flag``

    @property
    def target(self) -> str:
        return self.attr or self.name

    @property
    def contract(self) -> str | None:
        """The Preprocessing field this option sets, or None."""
        return self.target.removeprefix("preprocessing.") if self.target.startswith("preprocessing.") else None

    def value(self, raw: Any) -> Any:
        """``raw`` (a command-line string, an API keyword or a file value) coerced and checked."""
        value = self.coerce(raw) if self.coerce is not None else raw
        if self.check is not None:
            self.check(value)
        return value


_SHAPE = ",".join(map(str, DEFAULT_INPUT_SHAPE))

CONVERT_OPTIONS: tuple[Option, ...] = (
    Option("input_shape", "--input-shape", f"N,C,H,W of the model input (default {_SHAPE})", "shape", "shape",
           DEFAULT_INPUT_SHAPE, coerce=shape_value),
    Option("opset", "--opset", "ONNX opset, 11 to 13 (default 12)", "opset", "int", 12,
           cli={"type": int}, coerce=int, check=_check_opset),
    Option("mean_values", "--mean-values", "R,G,B subtracted from the 0..255 frame (model channel order; "
           "'imagenet' allowed; default 0,0,0)", "mean_values", "channels", attr="preprocessing.mean",
           coerce=channel_values("--mean-values")),
    Option("scale_values", "--scale-values", "R,G,B the frame is divided by after the mean "
           "(default 255,255,255: a model on [0, 1])", "scale_values", "channels", attr="preprocessing.scale",
           coerce=channel_values("--scale-values")),
    Option("reverse_input_channels", "--reverse-input-channels", "the model takes RGB (the camera sends BGR): "
           "reverse the channels (default on)", "encoding", "encoding", attr="preprocessing.reverse_input_channels",
           cli={"action": argparse.BooleanOptionalAction}, coerce=bool),
    Option("shaves", "--shaves", "SHAVE cores for the blob, 1 to 16 (default 6)", "rvc2.number_of_shaves", "int", 6,
           cli={"type": int}, coerce=int, check=_check_shaves),
    Option("weights", "--weights", "state dict (.pt/.pth) for a file.py:NAME model", "weights", "path",
           cli={"type": Path}, coerce=_path, check=_file("--weights")),
    Option("style", "--style", "style image, for the stylizer and adain models", "style", "path",
           cli={"type": Path}, coerce=_path, check=_file("--style")),
    Option("alpha", "--alpha", "style strength in [0, 1] (default 1)", "alpha", "float", 1.0,
           cli={"type": float}, coerce=float, check=_check_alpha),
    Option("weights_dir", "--weights-dir", "folder with vgg_normalised.pth and decoder.pth (adain)", "weights_dir",
           "path", cli={"type": Path}, coerce=_path, check=_file("--weights-dir", folder=True)),
    Option("out", "--out", "export folder (default exports/<model-name>)", "output_dir", "path",
           cli={"type": Path}, coerce=_path),
    Option("use_cache", "--no-cache", "recompute every stage", "use_cache", "bool", True,
           cli={"action": "store_false"}, coerce=bool),
    Option("verify", "--no-verify", "skip the stage-by-stage verification", "verify", "bool", True,
           cli={"action": "store_false"}, coerce=bool),
    Option("image", "--image", "photograph to verify on (default: a built-in one)", "verify_image", "path",
           attr="verify_image", cli={"type": Path}, coerce=_path, check=_file("--image")),
    Option("compile_timeout", "--compile-timeout", "budget of the MyriadX blob compile, and of the preflight's "
           "probes (default 600)", "compile_timeout", "number", 600.0,
           cli={"type": float, "metavar": "SECONDS"}, coerce=float, check=_check_timeout),
    # "fp16=30,ov2021=50": see oakpipe.verify.core.parse_tolerances
    Option("tolerance", "--tolerance", "per-stage limits, e.g. fp16=30,ov2021=50 (dB for image outputs) "
           "or fp16=0.05 (max error relative to the output's range)", "tolerance", "str"),
    Option("compiler", "--compiler", "offline: the private OpenVINO 2021.4 compiler (default); blobconverter: "
           "UPLOAD the model to Luxonis' web compiler (OAKPIPE_BLOBCONVERTER_URL sets the server)", "compiler", "str",
           "offline", cli={"choices": list(COMPILERS)}, check=_choice("--compiler", COMPILERS)),
    # what the outputs mean, for a model that does not say: oakpipe.tasks.declared
    Option("task", "--task", "what the outputs mean, for a model that does not say (Ultralytics models do): "
           "classify ([1, N] scores), segment-semantic ([1, C, H, W]), depth ([1, 1, H, W]); run then decodes, "
           "draws and writes --results", "task", "str", cli={"choices": TASK_CHOICES},
           check=_choice("--task", TASK_CHOICES)),
    Option("labels", "--labels", "class names, one per line (--task classify/segment-semantic)", "labels", "path",
           cli={"type": Path}, coerce=_path, check=_file("--labels")),
)
OPTIONS_BY_NAME = {option.name: option for option in CONVERT_OPTIONS}


def _default(name: str) -> Any:
    return OPTIONS_BY_NAME[name].default


@dataclass(frozen=True)
class ConvertOptions:
    """Everything that decides what ``convert`` produces (defaults and checks: ``CONVERT_OPTIONS``)."""

    model: str
    input_shape: tuple[int, int, int, int] = _default("input_shape")
    opset: int = _default("opset")
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    #: Fields of ``preprocessing`` (``CONTRACT_FIELDS``) that hold oakpipe's default, not a
    #: value the user gave: the model's declared contract replaces them (``resolve_contract``).
    #: Where a value came from, not what it is: left out of equality.
    contract_defaults: frozenset[str] = field(default=frozenset(), compare=False)
    shaves: int = _default("shaves")
    weights: Path | None = _default("weights")
    out: Path | None = _default("out")
    use_cache: bool = _default("use_cache")
    style: Path | None = _default("style")
    alpha: float = _default("alpha")
    weights_dir: Path | None = _default("weights_dir")
    verify: bool = _default("verify")
    verify_image: Path | None = _default("image")
    tolerance: str | None = _default("tolerance")
    compiler: str = _default("compiler")
    compile_timeout: float = _default("compile_timeout")
    task: str | None = _default("task")
    labels: Path | None = _default("labels")

    def __post_init__(self) -> None:
        validate_input_shape(self.input_shape)
        check_finite_contract(self.preprocessing)
        self._check(kind_is_path=False)
        check_task(self.task, self.labels)  # --labels on a depth model is said before "no such file"
        self._check(kind_is_path=True)

    def _check(self, kind_is_path: bool) -> None:
        """Each option's own check on its field (the contract's are in ``check_finite_contract``)."""
        for option in CONVERT_OPTIONS:
            if option.check is not None and option.contract is None and (option.kind == "path") == kind_is_path:
                option.check(getattr(self, option.target))

    @property
    def height(self) -> int:
        return self.input_shape[2]

    @property
    def width(self) -> int:
        return self.input_shape[3]
