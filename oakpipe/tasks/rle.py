"""Masks in ``--results``: COCO's uncompressed run-length encoding, in pixels of the frame shown.

Why RLE rather than polygons (Ultralytics' ``masks.xy``): it is lossless (the decoded mask
is the drawn mask, pixel for pixel, holes and separate parts included, where a polygon is an
approximation of one outline), it is the format every COCO tool reads (pycocotools'
``frPyObjects`` + ``decode``, Detectron2, FiftyOne, CVAT), and it decodes with NumPy alone
(``decode`` below, three lines). Uncompressed rather than COCO's compressed string so a
program in any language can read it from the JSON as it is.

The form: ``{"size": [height, width], "counts": [n0, n1, n2, ...]}``; the mask flattened in
column-major order (down the first column, then the next), ``n0`` pixels of 0, then ``n1``
of 1, alternating; ``n0`` may be 0 and the counts sum to height x width.
"""

from __future__ import annotations

import numpy as np


def encode(window: np.ndarray, box=None, shape: tuple[int, int] | None = None) -> dict:
    """A boolean mask -> COCO RLE of the frame. Either the whole H x W mask, or the ``window``
    at ``box`` [x0, y0, x1, y1] of a frame of ``shape`` (H, W), False outside it: only the
    window's columns are scanned."""
    if box is None:
        shape, box = window.shape, (0, 0, window.shape[1], window.shape[0])
    assert shape is not None
    height, width = shape
    x0, y0, x1, y1 = (int(v) for v in box)
    columns = np.zeros((x1 - x0, height), np.uint8)  # the window's columns, whole height, column-major
    columns[:, y0:y1] = window.T
    return {"size": [height, width], "counts": _counts(columns.reshape(-1), x0 * height, height * width)}


def _counts(values: np.ndarray, offset: int, total: int) -> list[int]:
    """Runs of a 0/1 stretch that starts at ``offset`` of ``total`` pixels, all else 0."""
    edges = np.flatnonzero(np.diff(values)) + 1 + offset  # where the value changes
    if values.size and values[0]:
        edges = np.concatenate(([offset], edges))
    if values.size and values[-1]:
        edges = np.concatenate((edges, [offset + values.size]))
    counts = np.diff(np.concatenate(([0], edges, [total]))).tolist()
    if len(counts) > 1 and counts[-1] == 0:  # ends with a 1-run: no empty 0-run after it
        counts.pop()
    return counts


def encode_labels(labels: np.ndarray, skip: int | None = None) -> list[tuple[int, int, dict]]:
    """An H x W label image -> [(label, pixels, RLE of that label)] by label, one pass over the
    image for all labels; ``skip``: a label left out (no class)."""
    height, width = labels.shape
    flat = np.ascontiguousarray(labels.T).reshape(-1)
    starts = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1))
    ends = np.concatenate((starts[1:], [flat.size]))
    values = flat[starts]
    found = []
    for label in np.unique(values).tolist():
        if label == skip:
            continue
        mine = values == label
        edges = np.column_stack((starts[mine], ends[mine])).reshape(-1)
        counts = np.diff(np.concatenate(([0], edges, [flat.size]))).tolist()
        if counts[-1] == 0:
            counts.pop()
        found.append((int(label), int((ends[mine] - starts[mine]).sum()), {"size": [height, width], "counts": counts}))
    return found


def area(rle: dict) -> int:
    """Pixels set in a COCO RLE (the 1-runs)."""
    return int(sum(rle["counts"][1::2]))


def decode(rle: dict) -> np.ndarray:
    """COCO RLE -> boolean H x W mask (what a program reading ``--results`` does, NumPy alone)."""
    height, width = rle["size"]
    flat = np.repeat(np.arange(len(rle["counts"])) % 2 == 1, rle["counts"])
    return flat.reshape(width, height).T
