"""The estimate a convert records in manifest.json and prints in one line."""

from __future__ import annotations

from pathlib import Path


def export_estimate(blob_info: dict, device_graph: Path, shaves: int) -> dict | None:
    """The preflight's RVC2 estimate, or one made now (blobconverter exports have no preflight).

    None when the graph cannot be read as ONNX (an imported IR): the manifest then says nothing
    rather than guess."""
    recorded = ((blob_info.get("preflight") or {}).get("estimates") or {}).get("rvc2")
    if recorded:
        return recorded
    if Path(device_graph).suffix != ".onnx":
        return None
    from oakpipe.estimate import estimate_onnx

    made = estimate_onnx(device_graph, shaves=shaves)
    return {**made.to_dict(), "line": made.line()}
