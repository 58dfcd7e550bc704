"""Failures on the user's own paths (a full disk, a read-only mount, a file where a folder
should be, no permission) are the user's to fix: exit 2 with the path and the fix, never
"internal error, report the traceback".

The OS says which it is through ``errno``. Libraries that write through C++ streams
(OpenVINO's ``save_model``, the 2021.4 compiler) lose the errno and raise a RuntimeError
with text such as "basic_ios::clear"; for those the folder's file system is asked after
the failure, before the partial files are removed: nearly no space left, or mounted
read-only, explains it.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from oakpipe.errors import UserError

#: Below this much free space, a failed write is blamed on the full disk.
NEARLY_FULL_BYTES = 4 << 20

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
READ_ONLY = (errno.EROFS,)
NO_PERMISSION = (errno.EACCES, errno.EPERM)
NOT_A_FOLDER = (errno.ENOTDIR, errno.EEXIST, errno.EISDIR)


def user_error_for_os(exc: OSError, folder: Path | None = None) -> UserError | None:
    """The UserError an OSError on a user's path stands for, or None when it is not one."""
    path = exc.filename or folder or "the output file or folder"
    where = folder or path
    writing = f" (writing {path})" if str(path) != str(where) else ""
    if exc.errno in NO_SPACE:
        return UserError(f"no space left on the device holding {where}{writing}",
                         "free some space, or write elsewhere with --out, and run again; finished stages are kept")
    if exc.errno in READ_ONLY:
        return UserError(f"{path} is on a read-only file system", "write elsewhere with --out DIR on a writable disk")
    if exc.errno in NO_PERMISSION:
        return UserError(f"permission denied writing {path}",
                         "write elsewhere with --out DIR, or make the folder writable for this user")
    if exc.errno in NOT_A_FOLDER:
        return UserError(f"{path} is not a folder (a file or other object has that name)",
                         "pass --out a folder path, or move that file away")
    return None


def folder_problem(folder: Path) -> UserError | None:
    """Why nothing can be written in ``folder`` right now (full or read-only), or None."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return None
    if stats.f_flag & os.ST_RDONLY:
        return user_error_for_os(OSError(errno.EROFS, "read-only", str(folder)), folder)
    if stats.f_bavail * stats.f_frsize < NEARLY_FULL_BYTES:
        return user_error_for_os(OSError(errno.ENOSPC, "no space", str(folder)), folder)
    return None


def explain_failure(exc: BaseException, folder: Path) -> UserError | None:
    """A failure while writing into ``folder``, as a UserError when the disk explains it.

    Call it before partial files are deleted: their removal frees the space again."""
    if isinstance(exc, OSError):
        mapped = user_error_for_os(exc, folder)
        if mapped is not None:
            return mapped
    return folder_problem(folder)


def check_output_folder(folder: Path, option: str = "--out") -> None:
    """Make sure ``folder`` is (or can become) a folder this process can write into."""
    existing = next((p for p in (folder, *folder.parents) if p.exists() or p.is_symlink()), None)
    if existing is not None and not existing.is_dir():
        raise UserError(f"{option} {folder}: {existing} is a file, not a folder",
                        f"pass {option} a folder path, or move {existing} away")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".oakpipe-write-check-", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        mapped = user_error_for_os(exc, folder)
        if mapped is None:
            raise UserError(f"{option} {folder} cannot be written: {exc.strerror or exc}",
                            f"pass {option} a folder on a writable disk") from None
        raise mapped from None
