"""Typed, validated options for ``run``: one frozen object, checked before any work is done.

Checking the output paths here (not when the first frame arrives) means a typo in
``--record`` costs the user a second, not a model compile and a warm-up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from oakpipe.errors import UserError

BACKENDS = ("auto", "device", "host")
DISPLAYS = ("auto", "window", "web", "none")
#: An endless source (camera, sample, image) shown nowhere would run forever: stop here.
DEFAULT_HEADLESS_FRAMES = 100


@dataclass(frozen=True)
class RunOptions:
    """Everything that decides what ``run`` does with an export."""

    backend: str = "auto"
    source: str = "sample"
    frames: int | None = None
    display: str = "auto"
    record: Path | None = None
    save_frames: Path | None = None
    fps: float | None = None
    strip: Path | None = None
    strip_rows: int = 4
    #: Inference requests in flight on the host (the OAK's NN node runs 2 threads too).
    jobs: int = 2
    #: ``--display web``: where to serve the view (default 127.0.0.1:8080; port 0 = any free one).
    port: int | None = None
    host: str | None = None
    #: ``--device``: the OAK to run on (MxId, USB port name or IP); None = the only one attached.
    device: str | None = None
    #: ``--nn-queue``: frames the OAK's network input holds (non-blocking for the camera).
    nn_queue: int = 1
    #: Task models (oakpipe.tasks): JSON lines of decoded results, and the detection threshold.
    results: Path | None = None
    conf: float | None = None

    def __post_init__(self) -> None:
        if self.device and self.backend == "host":
            raise UserError(f"--device {self.device} chooses an OAK, but --backend host runs on this computer",
                            "drop --backend host (or --device)")
        if self.nn_queue < 1:
            raise UserError(f"--nn-queue {self.nn_queue} must be at least 1", "use 1 (lowest latency)")
        if self.backend not in BACKENDS:
            raise UserError(f"--backend {self.backend!r} is not one of {', '.join(BACKENDS)}", "use --backend auto")
        if self.display not in DISPLAYS:
            raise UserError(f"--display {self.display!r} is not one of {', '.join(DISPLAYS)}", "use --display auto")
        if self.frames is not None and self.frames < 1:
            raise UserError(f"--frames {self.frames} must be at least 1", "leave it out to run until the source ends")
        if self.fps is not None and not 0 < self.fps <= 240:
            raise UserError(f"--fps {self.fps} is outside (0, 240]", "e.g. --fps 30")
        if self.jobs < 1:
            raise UserError(f"jobs {self.jobs} must be at least 1", "use 2")
        if self.strip_rows < 1:
            raise UserError(f"strip rows {self.strip_rows} must be at least 1", "use 4")
        if self.record is not None:
            if Path(self.record).suffix.lower() != ".mp4":
                raise UserError(f"--record {self.record}: only .mp4 is written", "name it e.g. out.mp4")
            check_writable_file(Path(self.record), "--record", "out.mp4")
        if self.results is not None:
            check_writable_file(Path(self.results), "--results", "results.jsonl")
        if self.conf is not None and not 0 < self.conf < 1:
            raise UserError(f"--conf {self.conf} is outside (0, 1)", "e.g. --conf 0.25")
        if self.strip is not None:
            if Path(self.strip).suffix.lower() not in (".png", ".jpg", ".jpeg"):
                raise UserError(f"--strip {self.strip}: write a .png or .jpg", "name it e.g. strip.png")
            check_writable_file(Path(self.strip), "--strip", "strip.png")
        if self.save_frames is not None:
            check_writable_folder(Path(self.save_frames))
        if self.display != "web" and (self.port is not None or self.host is not None):
            raise UserError("--port and --host only apply to --display web", "add --display web")
        if self.port is not None and (isinstance(self.port, bool) or not 0 <= self.port <= 65535):
            raise UserError(f"--port {self.port} is outside 0..65535", "e.g. --port 8080, or --port 0 for any free one")
        if self.display == "web":
            from oakpipe.live.web import DEFAULT_HOST, DEFAULT_PORT, check_bindable

            check_bindable(self.host or DEFAULT_HOST, DEFAULT_PORT if self.port is None else self.port)


def check_writable_file(path: Path, option: str, example: str) -> None:
    """The file's folder must exist and be writable; the file itself may not exist yet
    (``example``: a file name of the option's kind, for the hint)."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UserError(f"{option} {path} is a folder", f"give a file name, e.g. {path / example}")
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{option} {path}: {folder} is a file, not a folder", "choose a path inside a folder")
    if not folder.is_dir():
        raise UserError(f"{option} {path}: the folder {folder} does not exist", f"create it: mkdir -p {folder}")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"{option} {path}: {folder} is not writable", "choose another folder")


def check_writable_folder(folder: Path) -> None:
    """``--save-frames`` may name a new folder, but its parent must be writable."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--save-frames {folder} is a file", "give a folder name")
    existing = folder if folder.is_dir() else folder.parent if str(folder.parent) else Path(".")
    if not existing.is_dir():
        raise UserError(f"--save-frames {folder}: the folder {existing} does not exist", f"mkdir -p {existing}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"--save-frames {folder}: {existing} is not writable", "choose another folder")
