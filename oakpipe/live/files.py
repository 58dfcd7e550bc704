"""Files a run writes (recording, saved frames, strip): complete under their final name, or absent.

Each is written under a hidden temporary name in its destination folder and renamed into
place when complete, so a reader never sees half a file under the name the user asked
for. A failed write is a one-line ``UserError`` that names the path and the fix; a full
disk says "no space left on" and which file system. OpenCV's ``VideoWriter`` reports no
write errors at all, so the recording is read back (frame count) before it is renamed,
and the free space is watched while recording.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np

from oakpipe.errors import UserError
from oakpipe.manifest import temporary_sibling, write_atomic

#: Below this much free space a recording stops (its index still fits) rather than fail silently.
MIN_FREE_BYTES = 1 << 20


def temporary_name(path: Path) -> Path:
    """Hidden, unique, same folder (so the rename is atomic), real suffix last (OpenCV reads it)."""
    return temporary_sibling(Path(path))


def remove_stale(path: Path) -> list[Path]:
    """Remove the temporary files a killed run left for ``path`` (``kill -9`` allows no clean-up).

    Only names of this module's pattern (``.STEM.tmp-PID-N.SUFFIX``; the stem may be a glob)
    whose process no longer exists are removed. -> what was removed.
    """
    path = Path(path)
    removed = []
    for candidate in path.parent.glob(f".{path.stem}.tmp-*-*{path.suffix}"):
        pid = candidate.name.rsplit(".tmp-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            try:
                candidate.unlink()
                removed.append(candidate)
            except OSError:
                pass  # not ours to remove after all (another user's, a read-only folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def mount_of(path: Path) -> tuple[str, str]:
    """(mount point, file system type) of the file system holding ``path``."""
    here = Path(os.path.abspath(path))
    while not here.exists() and here != here.parent:
        here = here.parent
    while not os.path.ismount(here) and here != here.parent:
        here = here.parent
    kind = "?"
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                parts = line.split()
                if len(parts) > 2 and parts[1] == str(here):
                    kind = parts[2]  # the last line for a mount point is the one in effect
    except OSError:
        pass
    return str(here), kind


def no_space(path: Path) -> str | None:
    """"no space left on MOUNT (TYPE)" when the file system holding ``path`` is (nearly) full."""
    folder = Path(path).parent if not Path(path).is_dir() else Path(path)
    try:
        stat = os.statvfs(folder)
    except OSError:
        return None
    if stat.f_bavail * stat.f_frsize >= MIN_FREE_BYTES:
        return None
    mount, kind = mount_of(folder)
    return f"no space left on {mount} ({kind}, {stat.f_bavail * stat.f_frsize // 1024} KiB free)"


def over_size_limit(path: Path) -> str | None:
    """"it reached this system's file size limit" when ``ulimit -f`` stopped the writes."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    try:
        size = Path(path).stat().st_size
    except OSError:
        return None
    if soft == resource.RLIM_INFINITY or size < soft:
        return None
    return f"it reached this system's file size limit ({soft} bytes, ulimit -f)"


def has_mp4_index(path: Path) -> bool:
    """True when the MP4's top-level boxes span the file and include ``moov`` (its index).

    A writer stopped by a full disk or a killed process leaves no ``moov``: no player can
    read such a file, however many frames it holds.
    """
    try:
        with open(path, "rb") as handle:
            end = os.fstat(handle.fileno()).st_size
            offset, seen = 0, set()
            while offset + 8 <= end:
                handle.seek(offset)
                header = handle.read(16)
                size, kind = int.from_bytes(header[:4], "big"), header[4:8]
                if size == 1 and len(header) == 16:  # a 64-bit size follows
                    size = int.from_bytes(header[8:16], "big")
                elif size == 0:  # the box runs to the end of the file
                    size = end - offset
                if size < 8:
                    return False
                seen.add(kind)
                offset += size
            return offset == end and b"moov" in seen
    except OSError:
        return False


def write_error(option: str, path: Path, exc: OSError) -> UserError:
    """An OSError while writing one of the user's files -> what is wrong with it, and the fix."""
    path = Path(path)
    folder = path.parent
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        mount, kind = mount_of(folder)
        return UserError(f"{option} {path}: no space left on {mount} ({kind})",
                         f"free some space on {mount}, or write to another disk")
    if code == errno.EROFS:
        return UserError(f"{option} {path}: {folder} is on a read-only file system", "write to another folder")
    if code in (errno.EACCES, errno.EPERM):
        return UserError(f"{option} {path}: permission denied in {folder}", "write to a folder you own")
    if code == errno.EISDIR:
        return UserError(f"{option} {path} is a folder", "give a file name")
    if code in (errno.ENOENT, errno.ENOTDIR) and folder.is_dir():  # there, but takes no new files (/proc)
        return UserError(f"{option} {path}: {folder} takes no new files ({exc.strerror or exc})",
                         "write to a folder on a normal disk")
    if code in (errno.ENOENT, errno.ENOTDIR):
        return UserError(f"{option} {path}: the folder {folder} does not exist (any more)", f"mkdir -p {folder}")
    if code == errno.EFBIG:
        return UserError(f"{option} {path}: the file grew past this system's file size limit",
                         "raise it (ulimit -f) or write less")
    return UserError(f"{option} {path}: {exc.strerror or exc}", "check the folder, or write somewhere else")


def commit(option: str, temporary: Path, path: Path) -> None:
    """Rename a complete temporary file onto its final name."""
    try:
        os.replace(temporary, path)
    except OSError as exc:
        raise write_error(option, path, exc) from None


def write_image(option: str, path: Path, image: np.ndarray) -> None:
    """Encode (format from the suffix) and write ``image`` atomically; OS errors are UserErrors."""
    import cv2

    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix, image)
    if not ok:
        raise UserError(f"{option} {path}: OpenCV cannot encode {path.suffix} images", "use .png or .jpg")
    try:
        write_atomic(path, encoded.tobytes())
    except OSError as exc:
        raise write_error(option, path, exc) from None


def make_folder(option: str, folder: Path) -> None:
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(option, Path(folder), exc) from None
