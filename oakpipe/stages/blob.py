"""Stage 4: the MyriadX blob, compiled offline by OpenVINO 2021.4's MYRIAD plugin.

The blob takes U8 (the camera's frame) and returns FP16, with ``shaves`` SHAVE cores and
as many CMX slices, stamped as 2021.4 so depthai reports the version it was built for.
When the compiler rejects the graph, the error names the op, the ONNX node and, where
the node's name carries it, the PyTorch module.
"""

from __future__ import annotations

import re
from pathlib import Path

from oakpipe.blame import clean_compiler_message, pytorch_module_of  # noqa: F401 (also read from here)
from oakpipe.blobfile import BlobInfo, read_blob, stamp_version
from oakpipe.errors import InternalError, UnsupportedModelError
from oakpipe.toolchain import DEFAULT_COMPILE_TIMEOUT, CompilerTimeout, compile_onnx_to_blob


def blob_file_name(name: str, shaves: int) -> str:
    """Luxonis' converter's naming, which users already recognise."""
    return f"{name}_openvino_2021.4_{shaves}shave.blob"


def build_blob(device_onnx: Path, blob_path: Path, shaves: int, compiler: str = "offline",
               timeout: float = DEFAULT_COMPILE_TIMEOUT) -> dict:
    if compiler == "blobconverter":  # opt-in only: it uploads the model to Luxonis' server
        from oakpipe.compilers.blobconverter_client import compile_with_blobconverter

        result = compile_with_blobconverter(device_onnx, blob_path, shaves)
    else:
        result = compile_with_budget(device_onnx, blob_path, shaves, timeout)
    if not result["ok"]:
        raise compiler_error(result, device_onnx)
    stamp_version(blob_path)
    info = read_blob(blob_path)
    check_blob(info, shaves)
    return {"blob": info.to_dict(), "compiler": result.get("openvino_version"),
            "device_wait_skipped": result.get("device_wait_skipped"), "compiler_timings": result.get("timings"),
            "compiled_by": compiler, "server": result.get("server")}


def compile_with_budget(device_onnx: Path, blob_path: Path, shaves: int, timeout: float) -> dict:
    """The offline compile; past ``timeout`` the model is too slow to compile, not a broken toolchain."""
    try:
        return compile_onnx_to_blob(device_onnx, blob_path, shaves, timeout=timeout)
    except CompilerTimeout:
        from oakpipe.verify.preflight import largest_layers

        raise UnsupportedModelError(
            f"the MYRIAD compiler did not finish in {timeout:g} s on this model (its largest layers: "
            f"{largest_layers(device_onnx)})",
            "raise --compile-timeout, or use a smaller input size or model; no blob was written",
        ) from None


def check_blob(info: BlobInfo, shaves: int) -> None:
    problems = []
    if info.version != "VERSION_2021_4":
        problems.append(f"version {info.version}")
    if info.shaves != shaves:
        problems.append(f"{info.shaves} shaves instead of {shaves}")
    problems += [f"input {p.name} is {p.data_type}" for p in info.inputs if p.data_type != "U8F"]
    problems += [f"output {p.name} is {p.data_type}" for p in info.outputs if p.data_type != "FP16"]
    if problems:
        raise InternalError("the compiled blob is not what the camera needs: " + ", ".join(problems))


def compiler_error(result: dict, device_onnx: Path) -> UnsupportedModelError:
    message = clean_compiler_message(result.get("message", ""))
    layer = find_layer_name(message)
    where = describe_node(device_onnx, layer) if layer else ""
    phase = "read the graph" if result.get("phase") == "read" else "compile the graph"
    return UnsupportedModelError(
        f"the MyriadX compiler (OpenVINO 2021.4) could not {phase}: {message}{where}",
        "replace that operation in the model (see `oakpipe verify` for the preflight); no blob was written",
    )


def find_layer_name(message: str) -> str | None:
    for pattern in (r'[Ll]ayer "([^"]+)"', r"layer '([^']+)'", r"name[: ]+\"?([\w/.:-]+)\"?", r"node ([\w/.:-]+)"):
        match = re.search(pattern, message)
        if match:
            return match.group(1)
    return None


def describe_node(device_onnx: Path, layer: str) -> str:
    """' (ONNX node /enc/conv/Conv, op Conv, PyTorch module enc.conv)' when it can be found."""
    import onnx  # only on a compiler error: a cached convert does not load it

    try:
        graph = onnx.load(str(device_onnx)).graph
    except Exception:
        return ""
    for node in graph.node:
        if layer == node.name or layer in node.output:
            module = pytorch_module_of(node.name)
            suffix = f", PyTorch module {module}" if module else ""
            return f" (ONNX node {node.name or node.output[0]}, op {node.op_type}{suffix})"
    return ""
