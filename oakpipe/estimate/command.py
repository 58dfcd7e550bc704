"""``oakpipe estimate MODEL|EXPORT``: the frame rate before the camera, and where the time goes."""

from __future__ import annotations

import tempfile
from pathlib import Path

from oakpipe.estimate.rvc2 import Rvc2Estimate, recommended_shaves


def estimate_target(target: Path | None, make_options, *, shaves: int, threads: int) -> tuple[str, Rvc2Estimate]:
    """(what was estimated, the estimate) for an export folder, an ONNX file or a MODEL spec.

    An export folder is estimated on its device graph (preprocessing included); a MODEL is
    exported to ONNX in a temporary folder first, nothing is compiled and nothing is kept."""
    from oakpipe.errors import UserError
    from oakpipe.estimate import estimate_onnx

    if not 1 <= shaves <= 16 or threads < 1:
        raise UserError(f"--shaves must be 1 to 16 and --threads at least 1 (got {shaves}, {threads})",
                        "depthai runs a blob on 1 to 16 SHAVEs with 1 or more inference threads (usually 2)")
    if target is not None and target.is_dir():
        from oakpipe.convert import Export

        export = Export.open(target)
        shaves = export.record.shaves or shaves  # what its blob was compiled for
        return str(export.device_onnx), estimate_onnx(export.device_onnx, shaves=shaves, threads=threads)
    if target is not None and target.suffix == ".onnx" and target.is_file():
        return str(target), estimate_onnx(target, shaves=shaves, threads=threads)
    from oakpipe.models.loader import build_module
    from oakpipe.models.source import parse_model_spec
    from oakpipe.precheck import check_model_files
    from oakpipe.stages.onnx_export import export_torch

    options = make_options()
    source = parse_model_spec(options.model)
    options = check_model_files(options, source)  # as convert does: a built-in's default style
    with tempfile.TemporaryDirectory(prefix="oakpipe-estimate-") as folder:
        path = Path(folder) / f"{source.name}.onnx"
        export_torch(build_module(source, options), options, path)
        return f"{source.name} {'x'.join(map(str, options.input_shape))}", estimate_onnx(path, shaves=shaves,
                                                                                       threads=threads)


def report_lines(what: str, estimate: Rvc2Estimate, top: int = 10) -> list[str]:
    total = sum(x.ms for x in estimate.layers) or 1.0
    lines = [f"oakpipe estimate {what}", estimate.line(), f"  basis: {estimate.basis}",
             f"  the {min(top, len(estimate.layers))} costliest of {len(estimate.layers)} layers "
             f"({total:.1f} ms of the {estimate.period_ms:.1f} ms per frame; the rest is the fixed "
             "and USB cost):",
             f"  {'ms':>6} {'share':>6} {'memory':<6} {'type':<22} {'layer (PyTorch module)'}"]
    from oakpipe.stages.blob import pytorch_module_of

    for layer in estimate.costliest(top):
        module = pytorch_module_of(layer.name)
        name = layer.name + (f" ({module})" if module else "")
        lines.append(f"  {layer.ms:6.2f} {layer.ms / estimate.period_ms:6.1%} {layer.memory:<6} {layer.op:<22} {name}")
    threads = estimate.threads
    lines.append(f"  recommended: {recommended_shaves(threads)} SHAVEs per blob with {threads} inference threads "
                 "and a camera running (13 of the 16 SHAVEs are usable; each thread takes the blob's count)")
    return lines
