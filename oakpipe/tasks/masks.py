"""Instance masks of YOLO-seg: depthai-nodes' ``process_single_mask``, computed where the box is.

``process_single_mask`` multiplies all prototypes by the coefficients over the whole
prototype map, fills everything outside the box with the logit threshold, resizes the whole
map to the input (416x416: 173,000 floats per instance) and thresholds it. Only the box can
come out True: the fill is the threshold itself (0 for the default mask confidence of 0.5,
which bilinear interpolation keeps at exactly 0), and "True" is "above the threshold". So
the same sums, crop and bilinear resize are done here on a window of the prototype map: the
box's prototype cells plus two fill cells on each side (or the map's edge), so every output
pixel of the window interpolates the same neighbours with the same weights as the
whole-map resize does. The window's corner is a whole number of prototype cells and the
input a whole multiple of the map (YOLO-seg's prototypes are 1/4 of the input), so the
result is pixel for pixel ``process_single_mask``'s (tests/tasks/test_fast_decode.py); any
other ratio takes ``process_single_mask`` itself.

Each mask is kept as that window (``InstanceMasks``): N full-frame masks would be 52 MB for
300 instances at 416x416, written and read again by drawing, where the windows hold a few
percent of it. ``masks[i]`` gives the whole H x W mask when asked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class InstanceMasks:
    """N instance masks over an H x W frame, each stored as the window outside which it is False."""

    shape: tuple[int, int]  # (height, width) of the frame shown
    boxes: np.ndarray  # N x 4 int [x0, y0, x1, y1]: each window, in pixels of the frame shown
    windows: list[np.ndarray]  # N bool arrays, (y1 - y0) x (x1 - x0)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> np.ndarray:
        """Instance ``i`` as a whole H x W bool mask."""
        mask = np.zeros(self.shape, bool)
        x0, y0, x1, y1 = (int(v) for v in self.boxes[i])
        mask[y0:y1, x0:x1] = self.windows[i]
        return mask

    def to_array(self) -> np.ndarray:
        """N x H x W bool."""
        return np.stack([self[i] for i in range(len(self))]) if len(self) else np.zeros((0, *self.shape), bool)

    @classmethod
    def from_array(cls, masks: np.ndarray) -> "InstanceMasks":
        """Whole-frame masks (N x H x W), each window the whole frame."""
        n, height, width = masks.shape
        return cls((height, width), np.tile([0, 0, width, height], (n, 1)), [m.astype(bool) for m in masks])

PAD = 2  # fill cells around the box in the window: bilinear reads one neighbour each side


def instance_masks(protos: np.ndarray, coefficients: list[np.ndarray], boxes: np.ndarray, mask_conf: float,
                   shape: tuple[int, int]) -> InstanceMasks:
    """``process_single_mask`` for each instance, as windows.

    ``protos`` C x h x w, ``coefficients`` one C-vector per instance, ``boxes`` N x 4
    normalized (cx, cy, w, h) as ``process_single_mask`` takes them, ``shape`` (H, W)."""
    import cv2
    from depthai_nodes.node.parsers.utils.masks_utils import probability_to_logit_threshold, process_single_mask

    height, width = shape
    _, mh, mw = protos.shape
    if height % mh or width % mw or not 0.0 < mask_conf < 1.0:  # not the case the window reproduces
        whole = [process_single_mask(protos, c, mask_conf, b, shape) > 0 for c, b in zip(coefficients, boxes)]
        return InstanceMasks(shape, np.tile([0, 0, width, height], (len(whole), 1)), whole)
    threshold = probability_to_logit_threshold(mask_conf)
    sy, sx = height // mh, width // mw
    frames, windows = np.zeros((len(coefficients), 4), np.int64), []
    for i, (coeff, box) in enumerate(zip(coefficients, boxes)):
        inside = _inside(box * np.array([mw, mh, mw, mh]), mw, mh)
        if inside is None:  # no prototype cell inside the box: all fill, all False
            windows.append(np.zeros((0, 0), bool))
            continue
        x0, y0, x1, y1 = _padded(inside, mw, mh)
        logits = np.full((y1 - y0, x1 - x0), threshold, protos.dtype)  # crop_mask's fill
        ix0, iy0, ix1, iy1 = inside
        logits[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = np.sum(
            protos[:, iy0:iy1, ix0:ix1] * coeff[..., np.newaxis, np.newaxis], axis=0)
        windows.append(cv2.resize(logits, ((x1 - x0) * sx, (y1 - y0) * sy), interpolation=cv2.INTER_LINEAR)
                       > threshold)
        frames[i] = (x0 * sx, y0 * sy, x1 * sx, y1 * sy)
    return InstanceMasks(shape, frames, windows)


def _inside(scaled: np.ndarray, mw: int, mh: int) -> tuple[int, int, int, int] | None:
    """The prototype cells ``crop_mask`` keeps (``x1 <= column < x2``, ``y1 <= row < y2``), as
    [first column, first row, end column, end row], or None when there are none."""
    c_x, c_y, width, height = (float(v) for v in scaled)
    x0, x1 = max(0, math.ceil(c_x - width / 2)), min(mw, math.ceil(c_x + width / 2))
    y0, y1 = max(0, math.ceil(c_y - height / 2)), min(mh, math.ceil(c_y + height / 2))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _padded(inside: tuple[int, int, int, int], mw: int, mh: int) -> tuple[int, int, int, int]:
    """The window: the inside cells with PAD fill cells around, within the map."""
    x0, y0, x1, y1 = inside
    return max(0, x0 - PAD), max(0, y0 - PAD), min(mw, x1 + PAD), min(mh, y1 + PAD)
