"""Where the host backend's frames come from: the sample scene, a webcam, a video, images.

Every source yields BGR U8 frames of whatever size it has; the pipeline fits them to the
network like the camera's preview does. Opening a source checks it (camera there, video
decodable, folder not empty) so a bad ``--source`` fails before the model is compiled.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oakpipe.errors import UserError
from oakpipe.imageio import channels_of, read_image_u8

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
SAMPLE_SIZE = (640, 480)  # width, height: a 4:3 sensor, cropped like the camera would


@dataclass
class FrameSource:
    """An opened source: frames, plus what the summary and the recorder need to know."""

    description: str
    frames: Iterator[np.ndarray]
    endless: bool
    fps: float | None = None
    length: int | None = None
    release: object = None

    def close(self) -> None:
        if self.release is not None:
            self.release()  # type: ignore[operator]
            self.release = None


def open_source(spec: str, repeat: int | None = None, preview: tuple[int, int] | None = None) -> FrameSource:
    """``sample`` | camera INDEX | VIDEO file | IMAGE file | DIR of images.

    ``preview`` (width, height) sizes the sample scene to the network's input.
    """
    text = str(spec).strip()
    if text == "sample":
        size = sample_size(*preview) if preview else SAMPLE_SIZE
        return FrameSource(f"sample scene {size[0]}x{size[1]}", sample_frames(size), endless=True)
    if text.isdigit():
        return open_camera(int(text))
    path = Path(text).expanduser()
    if path.is_dir():
        return open_folder(path)
    if not path.exists():
        raise UserError(f"--source {text}: no such file, folder or camera",
                        "use sample, a camera index (0), a video, an image or a folder of images")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = read_image(path)
        count = repeat
        return FrameSource(f"image {path.name}", repeat_image(image, count), endless=count is None, length=count)
    return open_video(path)


# --- the built-in scene ---------------------------------------------------------------

_BACKGROUNDS: dict[tuple[int, int], np.ndarray] = {}


def sample_size(width: int, height: int) -> tuple[int, int]:
    """A 4:3 'sensor' just large enough to cover a ``width`` x ``height`` preview.

    A synthetic scene has no native resolution, so it is rendered where the camera's crop
    needs no resize: the emulation then costs what the camera costs (nothing), and the
    host pipeline's overhead is the pipeline's, not a resampler's.
    """
    if width * 3 > height * 4:
        return width, max(height, round(width * 3 / 4))
    return max(width, round(height * 4 / 3)), height


def _background(w: int, h: int) -> np.ndarray:
    """Colour gradients twice the scene's width, so a moving window over it needs no maths per frame."""
    if (w, h) not in _BACKGROUNDS:
        x = np.linspace(0, 4 * math.pi, 2 * w, dtype=np.float32)[None, :]
        y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
        blue = 127 + 100 * np.sin(x) * np.ones_like(y)
        green = 40 + 190 * y * np.ones_like(x)
        red = 127 + 100 * np.cos(x / 2 + 3 * y)
        _BACKGROUNDS[(w, h)] = np.clip(np.stack([blue, green, red], axis=2), 0, 255).astype(np.uint8)
    return _BACKGROUNDS[(w, h)]


def sample_frame(index: int, size: tuple[int, int] = SAMPLE_SIZE) -> np.ndarray:
    """Frame ``index`` of the sample scene at ``size`` (width, height): scrolling gradients and
    coloured moving shapes.

    Deterministic in ``index`` (tests and recordings are reproducible), colourful and
    textured, so a model's output is not the trivial answer to a flat picture.
    """
    import cv2

    w, h = size
    k = h / 480  # shapes are laid out for 640x480 and scaled
    shift = round(index * 6 * k) % w
    frame = np.ascontiguousarray(_background(w, h)[:, shift : shift + w])
    t = index / 30.0
    cx, cy = int(w / 2 + 0.35 * w * math.cos(t)), int(h / 2 + 0.3 * h * math.sin(1.3 * t))
    cv2.circle(frame, (cx, cy), max(2, round(60 * k)), (40, 40, 230), -1, cv2.LINE_AA)
    cv2.circle(frame, (cx, cy), max(1, round(25 * k)), (250, 250, 250), -1, cv2.LINE_AA)
    rx = round(((index * 9) % (640 + 160) - 160) * w / 640)
    cv2.rectangle(frame, (rx, round(h - 150 * k)), (rx + round(140 * k), round(h - 40 * k)), (30, 200, 60), -1)
    angle = t * 2.0
    pts = np.array([[w * 0.25 + 70 * k * math.cos(angle + j * 2.094), h * 0.3 + 70 * k * math.sin(angle + j * 2.094)]
                    for j in range(3)], np.int32)
    cv2.fillPoly(frame, [pts], (230, 160, 20), cv2.LINE_AA)
    cv2.putText(frame, f"oakpipe {index:05d}", (round(w / 2 - 120 * k), round(40 * k)), cv2.FONT_HERSHEY_SIMPLEX,
                k, (255, 255, 255), max(1, round(2 * k)), cv2.LINE_AA)
    return frame


def sample_frames(size: tuple[int, int] = SAMPLE_SIZE) -> Iterator[np.ndarray]:
    index = 0
    while True:
        yield sample_frame(index, size)
        index += 1


# --- cameras, videos, images ------------------------------------------------------------

def open_camera(index: int) -> FrameSource:
    import cv2

    capture = cv2.VideoCapture(index)
    ok = capture.isOpened() and capture.read()[0]
    if not ok:
        capture.release()
        raise UserError(f"--source {index}: no camera at index {index} (or it is busy)",
                        "list cameras with ls /dev/video*, or use --source sample")
    fps = capture.get(cv2.CAP_PROP_FPS) or None
    return FrameSource(f"camera {index}", _read_capture(capture), endless=True, fps=fps, release=capture.release)


def open_video(path: Path) -> FrameSource:
    import cv2

    capture = cv2.VideoCapture(str(path))
    first = capture.read() if capture.isOpened() else (False, None)
    if not first[0]:
        capture.release()
        raise UserError(f"--source {path}: cannot decode it as a video", "check the file plays (ffprobe), or re-encode it to mp4")
    fps = capture.get(cv2.CAP_PROP_FPS) or None
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    return FrameSource(f"video {path.name}", _read_capture(capture, first[1]), endless=False, fps=fps,
                       length=count, release=capture.release)


def _read_capture(capture, first: np.ndarray | None = None) -> Iterator[np.ndarray]:
    if first is not None:
        yield first
    while True:
        ok, frame = capture.read()
        if not ok:
            return
        yield frame


def read_image(path: Path) -> np.ndarray:
    """A source image as the camera would see the scene: 3-channel BGR (grey is expanded)."""
    import cv2

    image = read_image_u8(path, "--source")
    channels = channels_of(image)
    if channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(image[:, :, :3]) if channels == 4 else image


def repeat_image(image: np.ndarray, count: int | None) -> Iterator[np.ndarray]:
    index = 0
    while count is None or index < count:
        yield image
        index += 1


def open_folder(folder: Path) -> FrameSource:
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise UserError(f"--source {folder}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})",
                        "point it at a folder of PNG or JPEG files")
    read_image(paths[0])  # fail now, not after the model is compiled
    return FrameSource(f"folder {folder} ({len(paths)} images)", (read_image(p) for p in paths),
                       endless=False, length=len(paths))


def paced(frames: Iterator[np.ndarray], fps: float | None) -> Iterator[np.ndarray]:
    """Hand frames out no faster than ``fps``, as a camera would."""
    if not fps:
        yield from frames
        return
    period = 1.0 / fps
    due = time.perf_counter()
    for frame in frames:
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        due = max(due + period, time.perf_counter() - period)
        yield frame
