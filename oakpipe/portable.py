"""Input files in manifest.json without the converting machine's absolute paths.

An export folder is made on a workstation and run on the camera's host, so what it
records must mean something there and reveal nothing of the machine it came from. A
file the convert read (the model file, the weights, the style image) is recorded by
name and sha256, plus a path only where one is portable: relative to the export folder
when the file is inside it or both are inside the project (the working directory) it was
converted from, or relative to the oakpipe package for its built-in files.
``oakpipe run`` never looks any of them up; only re-verifying an export folder does.
"""

from __future__ import annotations

import os
from pathlib import Path

from oakpipe.errors import UserError
from oakpipe.manifest import sha256_file, sha256_json

PACKAGE = Path(__file__).resolve().parent


def content_sha256(path: Path) -> str:
    """A file's sha256; for a folder (AdaIN's weights), one digest over its .pth files."""
    if path.is_dir():
        return sha256_json({p.name: sha256_file(p) for p in sorted(path.glob("*.pth"))})
    return sha256_file(path)


def record_file(path: Path | None, folder: Path) -> dict | None:
    """``{"name", "sha256"}``, with ``"path"`` (inside the folder) or ``"package"`` (built-in)."""
    if path is None:
        return None
    resolved, folder = Path(path).resolve(), Path(folder).resolve()
    entry = {"name": resolved.name, "sha256": content_sha256(resolved)}
    project = Path.cwd().resolve()
    if resolved.is_relative_to(PACKAGE):
        entry["package"] = resolved.relative_to(PACKAGE).as_posix()
    elif resolved.is_relative_to(folder) or (resolved.is_relative_to(project) and folder.is_relative_to(project)):
        # inside the export folder, or both in the project it was converted from: a relative path
        # climbs no higher than the project, so it names nothing outside it (and survives a copy)
        entry["path"] = Path(os.path.relpath(resolved, folder)).as_posix()
    return entry


def locate_file(entry: dict | str | None, folder: Path, what: str) -> Path | None:
    """The file a recorded entry names, with the recorded content; a UserError if not here."""
    if entry is None:
        return None
    if isinstance(entry, str):  # a manifest written before paths were made portable
        return Path(entry)
    candidates = []
    if "path" in entry:
        candidates.append(Path(folder) / entry["path"])
    if "package" in entry:
        candidates.append(PACKAGE / entry["package"])
    for candidate in candidates:
        if candidate.exists() and content_sha256(candidate) == entry["sha256"]:
            return candidate
    raise UserError(
        f"{folder} was converted with the {what} {entry['name']} (sha256 {entry['sha256'][:12]}), recorded by "
        "name and hash only (export folders hold no paths of the converting machine)",
        f"re-verify with the convert command line plus --out: oakpipe verify MODEL [--weights/--style PATH ...] "
        f"--out {folder}",
    )
