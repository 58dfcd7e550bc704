"""Stage 3: the device graph as an OpenVINO IR with FP16 weights (what the host runs).

Made with the current ``openvino`` package. Its input is set to U8, like the blob's,
so the host emulator feeds the very frame the camera would send. (IR v11 cannot be read
by the 2021.4 compiler, which therefore compiles from the device ONNX instead.)
"""

from __future__ import annotations

from pathlib import Path

from oakpipe.errors import UnsupportedModelError

#: Host inference must not silently run in bf16 (the default on CPUs with AVX512-BF16).
HOST_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}


def build_ir(device_graph: Path, xml_path: Path) -> dict:
    """From the device ONNX, or from a user's 2021.4 IR (v10) when the chain started there."""
    import openvino as ov

    try:
        if device_graph.suffix == ".xml":
            model = ov.Core().read_model(str(device_graph))
        else:
            model = ov.convert_model(str(device_graph))
    except Exception as exc:
        raise UnsupportedModelError(
            f"OpenVINO could not convert the ONNX graph: {str(exc).strip().splitlines()[0]}",
            "simplify the model or try another --opset",
        ) from exc
    ppp = ov.preprocess.PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8)
    model = ppp.build()
    ov.save_model(model, str(xml_path), compress_to_fp16=True)
    return {"openvino": ov.get_version()}


def compile_for_host(xml_path: Path, threads: int | None = None):
    """Compile the IR on the CPU in FP32 arithmetic (FP16 weights widened)."""
    import openvino as ov

    config: dict[str, object] = dict(HOST_CONFIG)
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    return ov.Core().compile_model(str(xml_path), "CPU", config)
