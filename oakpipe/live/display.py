"""Where decoded frames go: a window, an MP4, PNG files, a strip. Shared by both backends.

The side-by-side view is camera frame | model picture, scaled up (nearest neighbour, so
pixels stay exact) when the network input is small. Only the window and the recording
get the FPS/latency overlay; ``--save-frames`` and ``--strip`` keep clean pixels, so they
can be compared with the input.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from oakpipe.errors import UserError
from oakpipe.live.files import (
    commit,
    has_mp4_index,
    make_folder,
    no_space,
    over_size_limit,
    remove_stale,
    temporary_name,
    write_image,
)
from oakpipe.live.options import RunOptions

MIN_VIEW_HEIGHT = 240  # smaller networks (e.g. 128x128) are upscaled for viewing
WINDOW_TITLE = "oakpipe run (q or Esc to stop)"
GUI_HINT = "pip install opencv-python (oakpipe installs the headless build), or use --display none with --record"


def side_by_side(frame: np.ndarray, picture: np.ndarray) -> np.ndarray:
    """Camera frame | model picture at the frame's height, upscaled for viewing if small."""
    import cv2

    h, w = frame.shape[:2]
    if picture.shape[:2] != (h, w):
        ph, pw = picture.shape[:2]
        new_w = max(1, round(pw * h / ph))
        interp = cv2.INTER_NEAREST if ph < h else cv2.INTER_AREA
        picture = cv2.resize(picture, (new_w, h), interpolation=interp)
    view = np.concatenate([frame, picture], axis=1)
    factor = math.ceil(MIN_VIEW_HEIGHT / h) if h < MIN_VIEW_HEIGHT else 1
    if factor > 1:
        view = cv2.resize(view, (view.shape[1] * factor, h * factor), interpolation=cv2.INTER_NEAREST)
    return view


def overlay(view: np.ndarray, fps: float, latency_ms: float, label: str) -> np.ndarray:
    import cv2

    out = view.copy()
    text = f"{fps:5.1f} FPS  {latency_ms:6.1f} ms  {label}"
    cv2.rectangle(out, (0, 0), (min(out.shape[1], 12 + 11 * len(text)), 26), (0, 0, 0), -1)
    cv2.putText(out, text, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (80, 255, 80), 1, cv2.LINE_AA)
    return out


def gui_available() -> bool:
    """False for opencv-python-headless (its imshow raises 'The function is not implemented')."""
    import cv2

    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip().upper() not in ("NONE", "")
    return False


def display_present() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def choose_display(requested: str) -> tuple[bool, str]:
    """-> (show a window?, why), raising when a window is asked for and cannot be had."""
    if requested == "none":
        return False, "no window (--display none)"
    if requested == "web":  # a viewer like a window: an endless source runs until Ctrl-C
        return True, "web page (--display web)"
    gui, screen = gui_available(), display_present()
    if requested == "window":
        if not gui:
            raise UserError("this OpenCV has no GUI (opencv-python-headless), so it cannot open a window", GUI_HINT)
        if not screen:
            raise UserError("no display to open a window on ($DISPLAY and $WAYLAND_DISPLAY are unset)",
                            "run it on a desktop, or use --display none with --record OUT.mp4")
        return True, "window"
    if gui and screen:
        return True, "window (a display and a GUI OpenCV are present)"
    return False, "no window (" + ("no $DISPLAY" if gui else "headless OpenCV; pip install opencv-python for one") + ")"


class Window:
    def __init__(self) -> None:
        import cv2

        cv2.namedWindow(WINDOW_TITLE, cv2.WINDOW_AUTOSIZE)
        self.opened = False

    def show(self, view: np.ndarray) -> bool:
        """Show a frame; False once the user pressed q/Esc or closed the window."""
        import cv2

        cv2.imshow(WINDOW_TITLE, view)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), ord("Q"), 27):
            return False
        visible = cv2.getWindowProperty(WINDOW_TITLE, cv2.WND_PROP_VISIBLE) >= 1
        self.opened |= visible
        return visible or not self.opened

    def close(self) -> None:
        import cv2

        cv2.destroyAllWindows()
        cv2.waitKey(1)


class Recorder:
    """MP4 (mp4v) of the overlaid view; opened on the first frame, when its size is known.

    Written under a temporary name; ``close`` reads the frame count back and only then
    renames it, so ``--record``'s path holds a playable video or nothing.
    """

    #: frames between two free-space checks (one statvfs call: about a second of video)
    CHECK_EVERY = 30

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps, self.frames = Path(path), fps, 0
        self.writer: Any = None  # a cv2.VideoWriter once the first frame gives the size
        self.temporary = temporary_name(self.path)
        remove_stale(self.path)

    def write(self, view: np.ndarray) -> None:
        import cv2

        if self.writer is None:
            h, w = view.shape[:2]
            self.writer = cv2.VideoWriter(str(self.temporary), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))  # type: ignore[attr-defined]
            if not self.writer.isOpened():
                self.writer = None
                self.temporary.unlink(missing_ok=True)
                raise UserError(f"--record {self.path}: OpenCV cannot write an mp4 there", "try another path")
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # a failed write is reported once, at close
        try:
            self.writer.write(view)
        finally:
            cv2.utils.logging.setLogLevel(level)
        self.frames += 1
        if self.frames % self.CHECK_EVERY == 0:
            full = no_space(self.temporary)
            if full:  # stop while the video's index still fits, and keep what was recorded
                self.close()
                raise UserError(f"--record {self.path}: {full}: stopped after {self.frames} frames, "
                                f"which are in {self.path}", "free some space there, or record to another disk")

    def close(self) -> None:
        """Finish the file and rename it into place; a UserError (and no file) if it does not play."""
        if self.writer is None:
            return
        self.writer.release()
        self.writer = None
        try:
            problem = self._unplayable()
            if problem:
                hint = ("free some space there, or record to another disk" if "no space" in problem else
                        "raise the limit, or record fewer frames (--frames)" if "ulimit" in problem else
                        "check the folder, or record somewhere else")
                raise UserError(f"--record {self.path} was not written: {problem}", hint)
            commit("--record", self.temporary, self.path)
        finally:
            self.temporary.unlink(missing_ok=True)

    def _unplayable(self) -> str | None:
        """Why the finished file does not play all its frames, or None when it does."""
        import cv2

        count = 0
        if has_mp4_index(self.temporary):  # checked first: FFmpeg logs a line for a file without one
            capture = cv2.VideoCapture(str(self.temporary))
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
            capture.release()
        if count == self.frames:
            return None
        return (no_space(self.temporary) or over_size_limit(self.temporary)
                or f"it plays {count} of the {self.frames} frames written")


class FrameSaver:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        make_folder("--save-frames", self.folder)
        remove_stale(self.folder / "frame_*.png")

    def write(self, index: int, view: np.ndarray) -> None:
        write_image("--save-frames", self.folder / f"frame_{index:06d}.png", view)


class Strip:
    """A few rows of input | output spread over the run, in bounded memory.

    Keeps every ``stride``-th view; when twice the rows are kept, drops every other one and
    doubles the stride, so the rows end up spread over however long the run was.
    """

    def __init__(self, path: Path, rows: int) -> None:
        self.path, self.rows, self.stride = Path(path), rows, 1
        self.kept: list[np.ndarray] = []
        remove_stale(self.path)

    def add(self, index: int, view: np.ndarray) -> None:
        if index % self.stride:
            return
        self.kept.append(view)
        if len(self.kept) >= 2 * self.rows:
            self.kept = self.kept[::2]
            self.stride *= 2

    def save(self) -> None:
        if not self.kept:
            return
        picks = np.linspace(0, len(self.kept) - 1, min(self.rows, len(self.kept))).round().astype(int)
        rows = [self.kept[i] for i in dict.fromkeys(picks.tolist())]
        width = max(r.shape[1] for r in rows)
        rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rows]
        write_image("--strip", self.path, np.concatenate(rows, axis=0))


class Outputs:
    """All sinks of one run; ``close`` leaves every file complete, whatever stopped the run."""

    def __init__(self, options: RunOptions, window: bool, fps: float, name: str = "oakpipe") -> None:
        if window and options.display == "web":
            from oakpipe.live.web import WebView

            self.window: Any = WebView(options.host, options.port, name)
        else:
            self.window = Window() if window else None
        self.recorder = Recorder(options.record, fps) if options.record else None
        self.saver = FrameSaver(options.save_frames) if options.save_frames else None
        self.strip = Strip(options.strip, options.strip_rows) if options.strip else None

    @property
    def needs_overlay(self) -> bool:
        return self.window is not None or self.recorder is not None

    def show(self, index: int, clean: np.ndarray, overlaid: np.ndarray | None) -> bool:
        if self.saver:
            self.saver.write(index, clean)
        if self.strip:
            self.strip.add(index, clean)
        if self.recorder and overlaid is not None:
            self.recorder.write(overlaid)
        if self.window and overlaid is not None:
            return self.window.show(overlaid)
        return True

    def close(self) -> UserError | None:
        """Close every sink, even after one fails; -> the first failure (a UserError), or None."""
        failures: list[UserError] = []
        for close in (self.recorder and self.recorder.close, self.strip and self.strip.save,
                      self.window and self.window.close):
            if close:
                try:
                    close()
                except UserError as exc:
                    failures.append(exc)
        return failures[0] if failures else None
