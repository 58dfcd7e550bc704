"""Entry points: verify an export (from convert, or an existing folder)."""

from __future__ import annotations

from pathlib import Path

from oakpipe.preprocessing import Preprocessing
from oakpipe.verify.core import Tolerances, VerifyReport, VerifySubject, verify_subject
from oakpipe.verify.samples import sample_frames


def verify_artifacts(name: str, artifacts: dict[str, Path], manifest: dict, module,
                     image: Path | None = None, tolerances: Tolerances | None = None) -> VerifyReport:
    """``artifacts`` maps onnx/device/ir to paths; ``module`` is the torch model or None."""
    shape = tuple(manifest["options"]["input_shape"])
    subject = VerifySubject(
        name=name, model_onnx=artifacts["onnx"], device_onnx=artifacts["device"], ir=artifacts["ir"],
        preprocessing=Preprocessing.from_dict(manifest["preprocessing"]), input_shape=shape,  # type: ignore[arg-type]
        output_names=[o["name"] for o in manifest["stages"]["onnx"]["info"]["outputs"]], module=module,
        task=manifest["stages"]["onnx"]["info"].get("task"),  # set by convert's attach_task
    )
    frames = sample_frames(shape[2], shape[3], image)
    return verify_subject(subject, frames, tolerances)
