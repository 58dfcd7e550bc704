"""Typed, validated options for ``convert``: one frozen object passed whole to every stage."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from oakpipe.errors import UserError
from oakpipe.preprocessing import Preprocessing

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
        if not all(math.isfinite(v) for v in values):
            raise UserError(f"{option} {','.join(map(str, values))} holds NaN or infinity",
                            f"give three finite numbers, e.g. {option} 0,0,0 (or imagenet)")


TASK_CHOICES = ("detect", "segment", "pose", "classify", "segment-semantic", "depth")


def check_task(task: str | None, labels: Path | None) -> None:
    if task is not None and task not in TASK_CHOICES:
        raise UserError(f"--task {task!r} is unknown", f"use one of: {', '.join(TASK_CHOICES)}")
    if labels is not None and task == "depth":
        raise UserError("--labels names classes, and a depth model has none", "drop --labels")


@dataclass(frozen=True)
class ConvertOptions:
    """Everything that decides what ``convert`` produces."""

    model: str
    input_shape: tuple[int, int, int, int] = DEFAULT_INPUT_SHAPE
    opset: int = 12
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    #: Fields of ``preprocessing`` (``CONTRACT_FIELDS``) that hold oakpipe's default, not a
    #: value the user gave: the model's declared contract replaces them (``resolve_contract``).
    #: Where a value came from, not what it is: left out of equality.
    contract_defaults: frozenset[str] = field(default=frozenset(), compare=False)
    shaves: int = 6
    weights: Path | None = None
    out: Path | None = None
    use_cache: bool = True
    style: Path | None = None
    alpha: float = 1.0
    weights_dir: Path | None = None
    verify: bool = True
    verify_image: Path | None = None
    tolerance: str | None = None  # "fp16=30,ov2021=50": see oakpipe.verify.core.parse_tolerances
    compiler: str = "offline"  # "blobconverter" uploads the model to Luxonis' web compiler (opt-in)
    compile_timeout: float = 600.0  # seconds for the blob compile, and again for the preflight's probes
    task: str | None = None  # what the outputs mean, for a model that does not say: oakpipe.tasks.declared
    labels: Path | None = None  # class names, one per line (--task classify / segment-semantic)

    def __post_init__(self) -> None:
        validate_input_shape(self.input_shape)
        if self.opset not in SUPPORTED_OPSETS:
            raise UserError(
                f"--opset {self.opset} is not supported by the MyriadX toolchain here",
                "use --opset 11, 12 or 13 (12 is the default)",
            )
        if not 1 <= self.shaves <= MAX_SHAVES:
            raise UserError(
                f"--shaves {self.shaves} is outside 1..{MAX_SHAVES}",
                "an RVC2 has 16 SHAVE cores; 6 to 8 is usual for one network",
            )
        check_finite_contract(self.preprocessing)
        if not 0.0 <= self.alpha <= 1.0:
            raise UserError(f"--alpha {self.alpha} is outside [0, 1]", "0 keeps the content, 1 is full style")
        if not self.compile_timeout > 0:
            raise UserError(f"--compile-timeout {self.compile_timeout} is not a positive number of seconds",
                            "e.g. --compile-timeout 1800 for a large model")
        if self.compiler not in COMPILERS:
            raise UserError(f"--compiler {self.compiler!r} is unknown", f"use one of: {', '.join(COMPILERS)}")
        check_task(self.task, self.labels)
        for label, path in (("--weights", self.weights), ("--style", self.style), ("--image", self.verify_image),
                            ("--labels", self.labels)):
            if path is not None and not Path(path).is_file():
                raise UserError(f"{label} {path}: no such file", "check the path")
        if self.weights_dir is not None and not Path(self.weights_dir).is_dir():
            raise UserError(f"--weights-dir {self.weights_dir}: no such folder", "check the path")

    @property
    def height(self) -> int:
        return self.input_shape[2]

    @property
    def width(self) -> int:
        return self.input_shape[3]
