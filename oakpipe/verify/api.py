"""Entry points: verify an export (from convert, or an existing folder)."""

from __future__ import annotations

from pathlib import Path

from oakpipe.errors import UserError
from oakpipe.manifest_schema import ExportManifest
from oakpipe.verify.core import Tolerances, VerifyReport, VerifySubject, verify_subject
from oakpipe.verify.samples import sample_frames


def verify_artifacts(name: str, artifacts: dict[str, Path], manifest: dict, module,
                     image: Path | None = None, tolerances: Tolerances | None = None,
                     source_onnx: Path | None = None) -> VerifyReport:
    """``artifacts`` maps onnx/device/ir to paths; ``module`` is the torch model or None;
    ``source_onnx`` the user's own ONNX file, for a model that came as one."""
    record = ExportManifest.from_dict(manifest)
    shape, pre = record.input_shape, record.preprocessing
    if shape is None or pre is None or not record.onnx_output_names:
        raise UserError(f"{name}: the manifest lacks the input shape, preprocessing or ONNX outputs",
                        "run oakpipe convert again")
    subject = VerifySubject(
        name=name, model_onnx=artifacts["onnx"], device_onnx=artifacts["device"], ir=artifacts["ir"],
        preprocessing=pre, input_shape=shape, output_names=record.onnx_output_names, module=module,
        task=record.onnx_task,  # set by convert's attach_task
        source_onnx=source_onnx,
    )
    frames = sample_frames(shape[2], shape[3], image)
    return verify_subject(subject, frames, tolerances)
