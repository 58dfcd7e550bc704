"""Decoded results drawn for people: boxes with class names and scores, top-5 labels,
class maps and depth maps colour-mapped.

Drawn on a copy of the frame the network saw (so boxes are in its pixels); the live view
puts it beside the camera frame as it puts any model picture. Colours are fixed per class
id, so a class keeps its colour across frames.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from oakpipe.tasks.decode import Decoded, class_map_at
from oakpipe.tasks.masks import InstanceMasks

FONT_SCALE = 0.45


@lru_cache(maxsize=4096)
def class_colour(class_id: int) -> tuple[int, int, int]:
    """A stable, saturated BGR colour per class id (golden-ratio hue steps); cached, since a
    frame asks once per box."""
    import cv2

    hue = int((class_id * 0.618033988749895 % 1.0) * 179)
    hsv = np.array([[[hue, 220, 255]]], np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw(frame: np.ndarray, decoded: Decoded) -> np.ndarray:
    """BGR U8 frame -> a copy with the decoded results painted on it."""
    picture = frame.copy()
    if decoded.task == "classify":
        return draw_top(picture, decoded.top)
    if decoded.task == "segment-semantic" and decoded.map is not None:
        return draw_class_map(picture, decoded.map, decoded.classes)
    if decoded.task == "depth" and decoded.map is not None:
        return draw_depth(picture, decoded.map)
    if decoded.masks is not None:
        draw_masks(picture, decoded.masks, [d.class_id for d in decoded.detections])
    for det, corners in zip(decoded.detections, pixel_corners(decoded.detections, picture.shape)):
        draw_box(picture, corners, f"{det.name} {det.score:.2f}", class_colour(det.class_id))
        if det.keypoints:
            draw_keypoints(picture, det.keypoints)
    return picture


def pixel_corners(detections, shape) -> list[list[int]]:
    """Every box's corners rounded to pixels inside the picture, in one NumPy pass."""
    if not detections:
        return []
    h, w = shape[:2]
    return np.clip(np.rint([d.box for d in detections]), 0, [w - 1, h - 1, w - 1, h - 1]).astype(int).tolist()


# COCO's 17-keypoint skeleton (Ultralytics' pose models), as pairs of keypoint indices.
COCO_SKELETON = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
                 (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))
VISIBLE = 0.5


def draw_keypoints(picture: np.ndarray, keypoints) -> None:
    """Visible keypoints as dots, joined by COCO's skeleton when there are 17 of them."""
    import cv2

    points = [(int(round(x)), int(round(y)), v) for x, y, v in keypoints]
    if len(points) == 17:
        for a, b in COCO_SKELETON:
            if points[a][2] >= VISIBLE and points[b][2] >= VISIBLE:
                cv2.line(picture, points[a][:2], points[b][:2], (255, 160, 40), 1, cv2.LINE_AA)
    for x, y, v in points:
        if v >= VISIBLE:
            cv2.circle(picture, (x, y), 2, (40, 220, 255), -1, cv2.LINE_AA)


def draw_masks(picture: np.ndarray, masks: InstanceMasks, class_ids: list[int], alpha: float = 0.45) -> None:
    """Each instance's pixels tinted with its class colour (the later instance where they overlap).

    Only each mask's window is read: the later instance is the largest index covering a
    pixel, so each window takes one vectorised maximum (not a masked assignment, 10x
    slower). Then one blend over the frame (OpenCV's, rounded), kept where a mask covers it."""
    import cv2

    if not len(class_ids):
        return
    owner = np.zeros(picture.shape[:2], np.uint16)  # 1 + the last instance covering each pixel; 0: none
    for i, ((x0, y0, x1, y1), window) in enumerate(zip(masks.boxes.tolist(), masks.windows)):
        view = owner[y0:y1, x0:x1]
        np.maximum(view, window.view(np.uint8) * np.uint16(i + 1), out=view)
    covered = owner > 0
    if not covered.any():
        return
    palette = np.array([(0, 0, 0)] + [class_colour(c) for c in class_ids], np.uint8)
    tinted = cv2.addWeighted(picture, 1 - alpha, palette[owner], alpha, 0)
    np.copyto(picture, tinted, where=covered[..., np.newaxis])


def draw_box(picture: np.ndarray, corners: list[int], label: str, colour: tuple[int, int, int]) -> None:
    """The box (``pixel_corners``) outlined, with its label on a band above it (inside at the top edge)."""
    import cv2

    x1, y1, x2, y2 = corners
    cv2.rectangle(picture, (x1, y1), (x2, y2), colour, 2)
    (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, FONT_SCALE, 1)
    top = y1 - th - base - 2 if y1 - th - base - 2 >= 0 else y1
    cv2.rectangle(picture, (x1, top), (x1 + tw + 4, top + th + base + 2), colour, -1)
    cv2.putText(picture, label, (x1 + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, FONT_SCALE, (0, 0, 0), 1,
                cv2.LINE_AA)


def draw_top(picture: np.ndarray, top: list[tuple[int, str, float]]) -> np.ndarray:
    """The top-k labels with bars, on a dark band over the frame's upper part."""
    import cv2

    h, w = picture.shape[:2]
    step = 18
    band = picture[: min(h, step * len(top) + 8)]
    band[:] = (band * 0.35).astype(np.uint8)
    for row, (class_id, name, score) in enumerate(top):
        y = 6 + step * row
        cv2.rectangle(picture, (4, y), (4 + int((w - 8) * max(0.0, min(1.0, score))), y + step - 4),
                      class_colour(class_id), -1)
        cv2.putText(picture, f"{name} {score:.3f}", (8, y + step - 7), cv2.FONT_HERSHEY_SIMPLEX, FONT_SCALE,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return picture


def draw_class_map(picture: np.ndarray, class_map: np.ndarray, names: list[str], alpha: float = 0.55) -> np.ndarray:
    """Each pixel tinted with its class's colour (255 = no class: left as is), at the frame's size,
    with the names of the classes present, largest first."""
    import cv2

    ids = class_map_at(class_map, picture.shape[:2])
    palette = np.array([class_colour(i) for i in range(256)], np.float32)
    covered = ids != 255
    picture[covered] = (picture[covered] * (1 - alpha) + palette[ids[covered]] * alpha).astype(np.uint8)
    present, counts = np.unique(ids[covered], return_counts=True)
    for row, class_id in enumerate(present[np.argsort(-counts)][:5]):
        label = names[class_id] if class_id < len(names) else str(class_id)
        cv2.putText(picture, label, (6, 16 + 16 * row), cv2.FONT_HERSHEY_SIMPLEX, FONT_SCALE,
                    class_colour(int(class_id)), 1, cv2.LINE_AA)
    return picture


def draw_depth(picture: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """The map colour-mapped (TURBO, scaled to its own min..max per frame) at the frame's size.

    Per-frame scaling shows the near/far order of any model's output, metric or relative;
    the numbers themselves go to --results."""
    import cv2

    h, w = picture.shape[:2]
    values = np.nan_to_num(depth.astype(np.float32))
    low, high = float(values.min()), float(values.max())
    scaled = ((values - low) / (high - low) * 255 if high > low else np.zeros_like(values)).astype(np.uint8)
    coloured = cv2.applyColorMap(scaled, cv2.COLORMAP_TURBO)
    return cv2.resize(coloured, (w, h), interpolation=cv2.INTER_LINEAR)
