"""The export folder's ``manifest.json`` and the content-keyed stage cache.

Each stage is keyed by a hash of everything that decides its output (the content of its
inputs, its options, the versions of the tools it runs). A stage whose key and artifacts
match the manifest is skipped. Artifacts are written to a temporary name and renamed into
place, and the manifest is rewritten atomically after every stage, so an interrupted or
failed convert never leaves a file that looks complete and is not.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_stamp(path: Path) -> list[int]:
    """Size, modification and change times (ns) and inode: any write, rename over or copy
    changes one of them (the change time cannot be set back from user space), so an artifact
    whose stamp matches the one taken with its digest need not be hashed again: a cached
    convert of ResNet-50 would otherwise re-read its 380 MB of artifacts (about 1 s)."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def sha256_json(data: object) -> str:
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def temporary_sibling(path: Path) -> Path:
    """A name beside ``path`` that no other process uses and no reader mistakes for it."""
    # Keep the real suffix last: tools such as OpenVINO derive the .bin name from the .xml.
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}-{time.monotonic_ns()}{path.suffix}")


#: temporary_sibling's names (and the output-folder write check's): under the folder lock,
#: any such file is a leftover of a run that was killed before it could remove it.
TEMPORARY_NAME = re.compile(r"^\..+\.tmp-\d+-\d+|^\.oakpipe-write-check-")


@contextlib.contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write; renamed onto ``path`` when the block ends
    without an error, removed in every case. oakpipe's one way to put a file under its final
    name (a reader never sees half a file). The stage cache renames its artifacts itself,
    all at once, after hashing them."""
    tmp = temporary_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes) -> None:
    with replaced_atomically(path) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def export_lock(folder: Path) -> Iterator[None]:
    """Serialise concurrent converts into the same export folder; the holder removes the
    temporary files that killed runs left (no live run writes there without the lock)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            remove_stale_temporaries(folder)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the hidden temporary files of earlier runs in ``folder``; returns them."""
    stale = [p for p in folder.iterdir() if TEMPORARY_NAME.match(p.name) and p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def holds_no_artifact(folder: Path) -> bool:
    """True when ``folder`` holds only what a convert writes before its first stage: the
    lock, temporaries, and a manifest that records no stage."""
    for entry in folder.iterdir():
        if entry.name == ".lock" or TEMPORARY_NAME.match(entry.name):
            continue
        if entry.name != MANIFEST_NAME or Manifest.load(folder).stages:
            return False
    return True


@contextlib.contextmanager
def export_folder_kept_only_if_written(folder: Path) -> Iterator[None]:
    """The folders a convert creates for ``folder`` are removed again when it fails before
    any stage wrote an artifact: a refused convert leaves no empty export behind. A folder
    that existed before, or one holding anything else, stays as it is."""
    folder = Path(folder)
    created = [p for p in (folder, *folder.parents) if not (p.exists() or p.is_symlink())]
    try:
        yield
    except BaseException:
        if created and _remove_unwritten(folder):
            for path in created[1:]:  # the folders above it, deepest first, while they are empty
                try:
                    path.rmdir()
                except OSError:
                    break
        raise


def _remove_unwritten(folder: Path) -> bool:
    """Remove ``folder`` if it holds no artifact and no other convert holds its lock; -> removed."""
    try:
        with open(folder / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another convert working there: keep it
            if not holds_no_artifact(folder):
                return False
            for entry in folder.iterdir():
                entry.unlink()
        folder.rmdir()
        return True
    except OSError:  # the lock is held, or something else is there (or appeared)
        return False


@dataclass
class StageRecord:
    key: str
    seconds: float
    artifacts: dict[str, str]  # file name -> sha256
    info: dict = field(default_factory=dict)


@dataclass
class Manifest:
    """What an export folder holds, and how it was made."""

    folder: Path
    data: dict

    @classmethod
    def load(cls, folder: Path) -> "Manifest":
        path = folder / MANIFEST_NAME
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            data = {}
        if data.get("schema") != SCHEMA_VERSION:
            data = {"schema": SCHEMA_VERSION, "stages": {}}
        return cls(folder, data)

    @property
    def stages(self) -> dict[str, dict]:
        return self.data.setdefault("stages", {})

    def save(self) -> None:
        text = json.dumps(self.data, indent=2, sort_keys=False) + "\n"
        write_atomic(self.folder / MANIFEST_NAME, text.encode())

    def artifact(self, stage: str, suffix: str = "") -> Path:
        """Path of the (first) artifact of ``stage`` whose name ends with ``suffix``."""
        for name in self.stages[stage]["artifacts"]:
            if name.endswith(suffix):
                return self.folder / name
        raise KeyError(f"{stage} has no artifact ending in {suffix!r}")

    def is_fresh(self, stage: str, key: str) -> bool:
        record = self.stages.get(stage)
        if not record or record.get("key") != key:
            return False
        stamps = record.setdefault("stamps", {})
        for name, digest in record["artifacts"].items():
            path = self.folder / name
            if not path.is_file():
                return False
            if stamps.get(name) == file_stamp(path):
                continue  # untouched since its digest was taken
            if sha256_file(path) != digest:
                return False
            stamps[name] = file_stamp(path)  # a copied or touched folder: hashed once, then trusted again
        return True


def read_manifest(folder: Path) -> dict:
    """An export folder's manifest for reading it back: {} when it has none, a UserError
    when the folder is missing or the manifest corrupt (each said as what it is)."""
    from oakpipe.errors import UserError

    if not folder.is_dir():
        what = "is a file, not an export folder" if folder.exists() else "does not exist"
        raise UserError(f"{folder} {what}", "check the path, or make the export with oakpipe convert")
    path = folder / MANIFEST_NAME
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (ValueError, OSError) as exc:  # bad JSON or bad UTF-8; an unreadable file
        raise UserError(f"{path} is corrupt ({type(exc).__name__}: {str(exc)[:120]})",
                        "run oakpipe convert again to rebuild the export (finished artifacts are rechecked)") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA_VERSION or not isinstance(data.get("stages"), dict):
        raise UserError(f"{path} is corrupt or from another oakpipe version (schema {SCHEMA_VERSION} expected)",
                        "run oakpipe convert again to rebuild the export")
    return data


StageBody = Callable[[dict[str, Path]], dict]
"""Writes each named artifact to the temporary path it is given; returns stage info."""


def run_stage(
    manifest: Manifest,
    stage: str,
    key_material: dict,
    artifact_names: list[str],
    body: StageBody,
    use_cache: bool = True,
    invalidates_export: bool = True,
) -> tuple[StageRecord, bool]:
    """Run ``body`` unless the manifest already holds its result. Returns (record, cached).

    A stage whose artifacts others depend on marks the export incomplete while it runs;
    a report-only stage (``invalidates_export`` False) does not."""
    key = sha256_json(key_material)
    if use_cache and manifest.is_fresh(stage, key):
        old = manifest.stages[stage]
        return StageRecord(key, old["seconds"], old["artifacts"], old.get("info", {})), True

    manifest.stages.pop(stage, None)
    if invalidates_export:
        manifest.data["complete"] = False
    manifest.save()
    final = {name: manifest.folder / name for name in artifact_names}
    temps = {name: temporary_sibling(path) for name, path in final.items()}
    start = time.perf_counter()
    try:
        info = body(temps) or {}
        for name, tmp in temps.items():
            if not tmp.is_file():
                raise RuntimeError(f"stage {stage} did not write {name}")
        digests = {name: sha256_file(temps[name]) for name in artifact_names}
        for name in artifact_names:
            os.replace(temps[name], final[name])
    except Exception as exc:
        blame_disk(exc, manifest.folder)  # before the partial files go: they hold the space
        raise
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
    record = StageRecord(key, round(time.perf_counter() - start, 3), digests, info)
    manifest.stages[stage] = {
        "key": record.key,
        "seconds": record.seconds,
        "artifacts": record.artifacts,
        "stamps": {name: file_stamp(path) for name, path in final.items()},
        "info": record.info,
        "key_material": key_material,
    }
    manifest.save()
    return record, False


def blame_disk(exc: Exception, folder: Path) -> None:
    """Raise a UserError when a full or read-only disk explains ``exc``.

    Errors already typed as the user's (a bad model, a wrong option) stand as they are;
    anything else (an OSError, a C++ writer's RuntimeError, a compiler failure) is checked
    against the folder's file system."""
    from oakpipe.errors import UnsupportedModelError, UserError
    from oakpipe.userpaths import explain_failure

    if isinstance(exc, UserError) and not isinstance(exc, UnsupportedModelError):
        return
    mapped = explain_failure(exc, folder)
    if mapped is not None:
        raise mapped from exc
