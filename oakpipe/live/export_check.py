"""Open an export folder for running, and refuse one whose parts disagree.

``Export.open`` already checks every artifact against the manifest. Running adds two
checks that matter on a camera: the blob inside the NN Archive must be the export's blob
(``setNNArchive`` and ``setBlobPath`` must run the same network), and the blob must take
the frame size the host IR takes (the camera is asked for the blob's size; a mismatch is
only logged on the device, not raised).
"""

from __future__ import annotations

import hashlib
import logging
import tarfile
from pathlib import Path

from oakpipe.convert import Export
from oakpipe.errors import UserError
from oakpipe.live.archive_input import open_archive, own_export_folder
from oakpipe.live.runnable import RunnableExport
from oakpipe.manifest import sha256_file
from oakpipe.manifest_schema import ExportManifest

log = logging.getLogger(__name__)

__all__ = ["RunnableExport", "open_for_run", "open_export_folder"]


def open_for_run(path: Path) -> RunnableExport:
    """The one way to open what ``run`` is given: an export folder, or an NN Archive (ours,
    run as its export folder, or another tool's)."""
    path = Path(path)
    if path.is_file() and path.name.lower().endswith((".tar.xz", ".tar.gz", ".tgz", ".tar")):
        own = own_export_folder(path)
        return open_export_folder(own) if own is not None else open_archive(path)
    return open_export_folder(path)


def open_export_folder(folder: Path) -> RunnableExport:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such export folder", "run oakpipe convert MODEL first (it writes exports/<name>)")
    if not (folder / "manifest.json").is_file():
        raise UserError(f"{folder} has no manifest.json, so it is not an export folder",
                        "run oakpipe convert MODEL --out {folder}")
    export = Export.open(folder)
    record = export.record
    warning = verification_warning(folder, record)
    if warning:
        log.warning(warning)
    check_archive_holds_blob(export.archive, export.blob)
    width, height = check_blob_matches_ir(export)
    if record.preprocessing is None:
        raise UserError(f"{folder / 'manifest.json'} records no preprocessing", "run oakpipe convert again")
    return RunnableExport(export, record.preprocessing, width, height)


def verification_warning(folder: Path, manifest: ExportManifest) -> str | None:
    """One line when the export was not shown to compute what its model computes, else None.

    ``verified`` is True only when verify ran to the end and passed; None (or absent) means
    it was skipped (``--no-verify``) or never finished (killed while verifying).
    """
    verified = manifest.verified
    if verified is True:
        return None
    if verified is False:
        return (f"{folder} FAILED verification (see {folder / 'verify.md'}): it may not compute what the model "
                f"computes -> fix the model or options, then: oakpipe verify {folder}")
    if manifest.kind == "ir":
        return (f"{folder} is not verified: it was converted from an OpenVINO IR, so there is no source model "
                "to compare it with")
    return (f"{folder} is not verified (verification was skipped or did not finish) -> "
            f"to verify it: oakpipe verify {folder}")


def check_archive_holds_blob(archive: Path, blob: Path) -> None:
    """The archive's blob and the export's blob must be byte-identical (compared by sha256)."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = [m for m in tar.getmembers() if m.name.endswith((".blob", ".superblob"))]
            if not members:
                raise UserError(f"{archive} holds no blob", "run oakpipe convert again")
            handle = tar.extractfile(members[0])
            assert handle is not None
            digest = hashlib.sha256()
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
            inside = digest.hexdigest()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UserError(f"{archive} is not a readable NN Archive: {exc}", "run oakpipe convert again") from exc
    if inside != sha256_file(blob):
        raise UserError(f"the blob inside {archive.name} differs from {blob.name} (sha256 {inside[:12]} vs "
                        f"{sha256_file(blob)[:12]})", "run oakpipe convert --no-cache to rebuild both")


def check_blob_matches_ir(export: Export) -> tuple[int, int]:
    """Return (width, height) the camera must send; raise if blob and IR disagree on it."""
    import openvino as ov

    from oakpipe.blobfile import read_blob

    blob = read_blob(export.blob)
    if len(blob.inputs) != 1:
        raise UserError(f"{export.blob.name} has {len(blob.inputs)} inputs", "the camera feeds exactly one image")
    blob_nchw = blob.inputs[0].nchw
    ir_inputs = ov.Core().read_model(str(export.ir)).inputs
    ir_nchw = [int(d) for d in ir_inputs[0].get_shape()] if len(ir_inputs) == 1 else None
    if ir_nchw != blob_nchw:
        _, _, h, w = blob_nchw
        raise UserError(f"{export.blob.name} takes {w}x{h} frames ({blob_nchw}) but {export.ir.name} takes {ir_nchw}",
                        f"the camera needs a {w}x{h} BGR888p frame for this blob: run oakpipe convert again "
                        f"with --input-shape 1,3,{h},{w}")
    if list(export.input_shape) != blob_nchw:
        raise UserError(f"{export.blob.name} takes {blob_nchw} but the manifest says {list(export.input_shape)}",
                        "run oakpipe convert again")
    return blob_nchw[3], blob_nchw[2]
