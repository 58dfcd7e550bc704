"""Network outputs -> something to look at. Shared by the device and host backends.

An image-shaped output (1x3xHxW or 1x1xHxW) goes back through the camera contract
(``model_output_to_frame``), so ``halve`` shows a dimmer copy of the frame. Anything else
becomes a heat map (a spatial tensor) or a panel of numbers; decoding never raises on an
odd shape, because a live view should not die on the model's choice of output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np

from oakpipe.preprocessing import Preprocessing, model_output_to_frame


class NNDataLike(Protocol):
    """The part of ``depthai.NNData`` the decoder uses (a mock in tests)."""

    def getAllLayerNames(self) -> list[str]: ...
    def getTensor(self, name: str, *args) -> np.ndarray: ...
    def getTensorInfo(self, name: str): ...


def nn_data_to_outputs(message: NNDataLike, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """An NNData message -> {output name: float32 array, shaped (NCHW)}, in the blob's output order."""
    available = list(message.getAllLayerNames())
    order = [n for n in (names or []) if n in available] + [n for n in available if n not in (names or [])]
    return {name: np.asarray(nchw_tensor(message, name), dtype=np.float32) for name in order}


def nchw_tensor(message: NNDataLike, name: str) -> np.ndarray:
    """A 4-D tensor asked for in NCHW whatever order the device stored it in (as Luxonis' parsers
    do); other ranks as they are (depthai would pad a 2-D one to N x C x 1 x 1)."""
    info = message.getTensorInfo(name)
    if info.numDimensions == 4:
        return message.getTensor(name, type(info.order).NCHW)
    return message.getTensor(name)


def squeeze_batch(array: np.ndarray) -> np.ndarray:
    while array.ndim > 3 and array.shape[0] == 1:
        array = array[0]
    return array


def is_image_shaped(array: np.ndarray) -> bool:
    """(1,)3|1 x H x W with a picture-like size."""
    a = squeeze_batch(np.asarray(array))
    return a.ndim == 3 and a.shape[0] in (1, 3) and min(a.shape[1:]) >= 8


def decode_outputs(outputs: Mapping[str, np.ndarray], pre: Preprocessing, size: tuple[int, int]) -> tuple[np.ndarray, str]:
    """-> (BGR U8 picture of ``size`` (width, height) or its aspect, what it shows)."""
    width, height = size
    for name, array in outputs.items():
        if is_image_shaped(array):
            return model_output_to_frame(squeeze_batch(np.asarray(array)), pre), f"{name} as image"
    if len(outputs) == 1:
        name, array = next(iter(outputs.items()))
        a = squeeze_batch(np.asarray(array, dtype=np.float32))
        if a.ndim >= 2 and min(a.shape[-2:]) >= 4:
            return heat_map(a), f"{name} as heat map"
    return text_panel(outputs, width, height), "values"


def heat_map(array: np.ndarray) -> np.ndarray:
    """Spatial tensor (..., H, W) -> colour map of its channel mean, min..max stretched."""
    import cv2

    a = np.asarray(array, dtype=np.float32).reshape(-1, *array.shape[-2:]).mean(axis=0)
    a = np.nan_to_num(a)
    lo, hi = float(a.min()), float(a.max())
    scaled = np.zeros(a.shape, np.uint8) if hi <= lo else ((a - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    return cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO)


def text_panel(outputs: Mapping[str, np.ndarray], width: int, height: int) -> np.ndarray:
    """Shape, range and the largest values of each output, drawn on a dark panel."""
    import cv2

    panel = np.full((height, width, 3), 24, np.uint8)
    lines: list[str] = []
    for name, array in outputs.items():
        a = np.nan_to_num(np.asarray(array, dtype=np.float32).ravel())
        lines.append(f"{name} {list(np.shape(array))}")
        if a.size:
            lines.append(f" min {a.min():.3g} max {a.max():.3g} mean {a.mean():.3g}")
            top = np.argsort(a)[::-1][:5]
            lines += [f"  [{int(i)}] {a[i]:.4g}" for i in top]
    scale = max(0.35, min(0.6, width / 600))
    step = int(28 * scale) + 4
    for row, line in enumerate(lines[: max(1, (height - 10) // step)]):
        cv2.putText(panel, line, (6, 6 + step * (row + 1)), cv2.FONT_HERSHEY_SIMPLEX, scale, (230, 230, 230), 1,
                    cv2.LINE_AA)
    return panel
