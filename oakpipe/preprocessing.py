"""The camera-to-model contract, in the Model Optimizer's vocabulary.

The OAK camera sends U8 planar BGR frames (``BGR888p``) at the network's input size.
A model was trained on something else, typically RGB floats in [0, 1]. The contract
that maps one to the other is three numbers per channel and one flag:

    model_input[c] = (frame[perm[c]] - mean[c]) / scale[c]

where ``perm`` reverses the channels when ``reverse_input_channels`` is set (BGR frame,
RGB model). ``mean`` and ``scale`` are given in the *model's* channel order, as the Model
Optimizer's ``--mean_values``/``--scale_values`` are. ``Preprocessing.steps`` is the one
place that formula is written: the device graph (ONNX nodes), the host emulator (OpenVINO
pre-processing), the archive reader and the verifier's reference (numpy, here) each
translate those steps, so they cannot drift apart.

A model declares the contract it was trained on with an attribute (``oakpipe_preprocessing``,
a dict with ``mean``, ``scale`` and ``reverse_input_channels``, or a ``Preprocessing``). That
declaration is the default contract of ``convert``: values typed on the command line (or in
a config file) override it, and a conflict is stated in one line (``resolve_contract``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from oakpipe.errors import UserError

if TYPE_CHECKING:  # numpy is imported where it is used: a cached convert never needs it
    import numpy as np

#: ImageNet statistics on 0..255 RGB, the ``imagenet`` shorthand of Luxonis' modelconverter.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_SCALE = (58.395, 57.12, 57.375)
#: Attribute a model may carry to declare the input it was trained on (Model Optimizer
#: vocabulary on 0..255 values). Without it the contract is RGB on [0, 1].
DECLARED_CONTRACT = "oakpipe_preprocessing"
#: The contract's fields, as ``contract_defaults`` in the options names them.
CONTRACT_FIELDS = ("mean", "scale", "reverse_input_channels")
OPTION_NAMES = {"mean": "--mean-values", "scale": "--scale-values", "reverse_input_channels": "--reverse-input-channels"}


@dataclass(frozen=True)
class Preprocessing:
    """How a camera frame (U8, planar, BGR) becomes the model's input tensor."""

    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: tuple[float, float, float] = (255.0, 255.0, 255.0)
    reverse_input_channels: bool = True

    def __post_init__(self) -> None:
        if len(self.mean) != 3 or len(self.scale) != 3:
            raise UserError(
                f"mean and scale need 3 values each (one per colour channel), got "
                f"{len(self.mean)} and {len(self.scale)}",
                "pass e.g. --mean-values 0,0,0 --scale-values 255,255,255",
            )
        if any(s == 0 for s in self.scale):
            raise UserError("a scale value of 0 would divide by zero", "use 1 for no scaling")

    @property
    def channel_order(self) -> list[int]:
        """Index of the frame channel that feeds each model channel."""
        return [2, 1, 0] if self.reverse_input_channels else [0, 1, 2]

    @property
    def model_encoding(self) -> str:
        """Channel order the model expects (the frame is always BGR)."""
        return "RGB" if self.reverse_input_channels else "BGR"

    def steps(self) -> list[tuple[str, tuple]]:
        """The contract as ordered operations, identities left out: THE formula.

        ``("reverse", perm)`` picks frame channel ``perm[c]`` for model channel ``c``;
        ``("subtract", mean)`` and ``("divide", scale)`` act per model channel, so that
        ``model_input[c] = (frame[perm[c]] - mean[c]) / scale[c]``.
        """
        steps: list[tuple[str, tuple]] = []
        if self.reverse_input_channels:
            steps.append(("reverse", tuple(self.channel_order)))
        if any(m != 0 for m in self.mean):
            steps.append(("subtract", tuple(self.mean)))
        if any(s != 1 for s in self.scale):
            steps.append(("divide", tuple(self.scale)))
        return steps

    def is_identity(self) -> bool:
        return (
            not self.reverse_input_channels
            and all(m == 0 for m in self.mean)
            and all(s == 1 for s in self.scale)
        )

    def to_dict(self) -> dict:
        data = asdict(self)
        data["mean"] = list(self.mean)
        data["scale"] = list(self.scale)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocessing":
        return cls(
            mean=three_floats(data["mean"]),
            scale=three_floats(data["scale"]),
            reverse_input_channels=bool(data["reverse_input_channels"]),
        )

    @classmethod
    def from_archive(cls, mean: tuple[float, float, float], scale: tuple[float, float, float],
                     reverse_channels: bool, dai_type: str) -> "Preprocessing":
        """An NN Archive input's preprocessing -> the contract relative to a BGR frame.

        An ``RGB888p`` frame is a BGR frame with its channels already reversed once."""
        return cls(mean, scale, bool(reverse_channels) != (dai_type == "RGB888p"))


def three_floats(values) -> tuple[float, float, float]:
    """Per-channel values as floats; their count is checked by ``Preprocessing`` itself."""
    return tuple(float(v) for v in values)  # type: ignore[return-value]


def declared_contract(model: object) -> Preprocessing | None:
    """The contract ``model`` (a module, its class or factory) declares, or None."""
    declared = getattr(model, DECLARED_CONTRACT, None)
    if declared is None or isinstance(declared, Preprocessing):
        return declared
    try:
        data = dict(declared)
        unknown = sorted(set(data) - set(CONTRACT_FIELDS))
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)}")
        default = Preprocessing()
        return Preprocessing(
            mean=three_floats(data.get("mean", default.mean)),
            scale=three_floats(data.get("scale", default.scale)),
            reverse_input_channels=bool(data.get("reverse_input_channels", default.reverse_input_channels)),
        )
    except (TypeError, ValueError) as exc:
        raise UserError(f"{DECLARED_CONTRACT} = {declared!r} cannot be read: {exc}",
                        'declare e.g. {"mean": [127.5]*3, "scale": [128]*3, "reverse_input_channels": True}') from None


def resolve_contract(typed: Preprocessing, defaults: frozenset[str],
                     declared: Preprocessing | None) -> tuple[Preprocessing, str | None]:
    """(the contract to bake, a one-line warning or None).

    ``defaults`` names the fields of ``typed`` that were not given (command line or config
    file) and hold oakpipe's default: the model's declaration replaces those. A typed value
    that differs from the declaration wins, and the returned line says so."""
    if declared is None:
        return typed, None
    chosen = {name: getattr(declared if name in defaults else typed, name) for name in CONTRACT_FIELDS}
    conflicts = [f"{OPTION_NAMES[name]} {_show(getattr(typed, name))} (the model declares {_show(getattr(declared, name))})"
                 for name in CONTRACT_FIELDS
                 if name not in defaults and _show(getattr(typed, name)) != _show(getattr(declared, name))]
    warning = None
    if conflicts:
        warning = (f"{'; '.join(conflicts)} overrides the model's {DECLARED_CONTRACT}; "
                   "verify compares with the declaration")
    return Preprocessing(**chosen), warning


def _show(value: object) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(f"{float(v):.9g}" for v in value)
    return "on" if value else "off"


def default_contract(model: str | None) -> tuple[str, str, bool]:
    """(mean, scale, reverse) when none is given: RGB on [0, 1]; for an IR (.xml), its own."""
    if model and str(model).lower().endswith(".xml"):
        return "0,0,0", "1,1,1", False
    return "0,0,0", "255,255,255", True


def parse_channel_values(text: str, option: str) -> tuple[float, float, float]:
    """Parse ``R,G,B``, ``[R,G,B]`` or ``imagenet`` into three floats."""
    raw = text.strip()
    if raw.lower() == "imagenet":
        return IMAGENET_SCALE if "scale" in option else IMAGENET_MEAN
    parts = [p for p in raw.strip("[]()").replace(" ", ",").split(",") if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise UserError(
            f"{option} {text!r} is not a list of numbers", f"write it as {option} 0,0,0"
        ) from None
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise UserError(
            f"{option} takes 1 or 3 values (one per colour channel), got {len(values)}: {text!r}",
            f"write it as {option} R,G,B",
        )
    return values  # type: ignore[return-value]


def frame_to_model_input(frame_planar: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """U8 planar BGR frame (3, H, W) -> the model's float32 input (1, 3, H, W)."""
    import numpy as np

    frame = np.asarray(frame_planar, dtype=np.float32)
    if frame.ndim == 4:
        frame = frame[0]
    for op, values in pre.steps():
        if op == "reverse":
            frame = frame[list(values)]
        else:
            per_channel = np.asarray(values, np.float32).reshape(3, 1, 1)
            frame = frame - per_channel if op == "subtract" else frame / per_channel
    return np.ascontiguousarray(frame)[None]


def model_output_to_frame(image: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """An image-shaped model output (1|3, H, W) in model space -> U8 BGR (H, W, 3).

    The inverse of the input contract, so that an identity model shows the camera frame
    and ``halve`` shows a dimmer copy of it.
    """
    import numpy as np

    image = np.asarray(image, dtype=np.float32)
    while image.ndim > 3:
        image = image[0]
    if image.shape[0] == 1:
        gray = image[0] * pre.scale[0] + pre.mean[0]
        return np.repeat(np.clip(gray, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    mean = np.asarray(pre.mean, np.float32).reshape(3, 1, 1)
    scale = np.asarray(pre.scale, np.float32).reshape(3, 1, 1)
    values = image[:3] * scale + mean
    bgr = np.empty_like(values)
    bgr[pre.channel_order] = values
    return np.clip(np.rint(bgr), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def bgr_to_planar(image_bgr: np.ndarray) -> np.ndarray:
    """Interleaved (H, W, 3) -> planar (3, H, W), as the camera's BGR888p preview."""
    import numpy as np

    return np.ascontiguousarray(image_bgr.transpose(2, 0, 1))


def fit_like_camera_preview(image_bgr: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre-crop to the preview's aspect ratio, then resize: what ColorCamera's preview does
    with keep-aspect-ratio on (its default)."""
    import cv2
    import numpy as np

    h, w = image_bgr.shape[:2]
    target = width / height
    if w / h > target:
        new_w = max(1, round(h * target))
        x0 = (w - new_w) // 2
        image_bgr = image_bgr[:, x0 : x0 + new_w]
    elif w / h < target:
        new_h = max(1, round(w / target))
        y0 = (h - new_h) // 2
        image_bgr = image_bgr[y0 : y0 + new_h]
    if image_bgr.shape[:2] == (height, width):
        return np.ascontiguousarray(image_bgr)
    shrinking = image_bgr.shape[0] > height
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image_bgr, (width, height), interpolation=interp)
