"""Start the chain at an existing OpenVINO IR (v10, from the 2021.4 Model Optimizer).

Such an IR is already what the MYRIAD compiler reads, and it already carries whatever
preprocessing its Model Optimizer run baked in (``--mean_values``, ``--scale_values``,
``--reverse_input_channels``). oakpipe therefore takes it as the device graph as it is,
and refuses to pile a second contract on top: the camera's frame goes in unchanged.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from oakpipe.errors import UnsupportedModelError, UserError
from oakpipe.options import ConvertOptions


def import_ir(xml: Path, options: ConvertOptions, out_xml: Path, out_bin: Path) -> dict:
    import openvino as ov

    if not options.preprocessing.is_identity():
        raise UserError(
            "an IR carries the preprocessing its Model Optimizer run baked in; oakpipe cannot add more to it",
            "pass --mean-values 0 --scale-values 1 --no-reverse-input-channels (or convert the ONNX instead)",
        )
    try:
        model = ov.Core().read_model(str(xml))
    except Exception as exc:
        raise UserError(f"{xml.name} is not a readable OpenVINO IR: {str(exc).splitlines()[0]}",
                        "give the .xml of an IR with its .bin beside it") from exc
    if len(model.inputs) != 1:
        raise UnsupportedModelError(f"{xml.name} has {len(model.inputs)} inputs", "the camera feeds one image")
    port = model.inputs[0]
    shape = port.get_partial_shape()
    if shape.rank.is_dynamic or shape.rank.get_length() != 4:
        raise UserError(f"{xml.name} input has shape {shape}, not N,C,H,W", "use an IR with an NCHW image input")
    if shape.is_static and tuple(shape.to_shape()) != tuple(options.input_shape):
        raise UserError(f"{xml.name} takes input {list(shape.to_shape())}, --input-shape is "
                        f"{list(options.input_shape)}", f"pass --input-shape {','.join(map(str, shape.to_shape()))}")
    if shape.is_dynamic:
        raise UnsupportedModelError(f"{xml.name} has a dynamic input shape {shape}",
                                    "re-run the Model Optimizer with a static --input_shape")
    shutil.copyfile(xml, out_xml)
    shutil.copyfile(xml.with_suffix(".bin"), out_bin)

    def describe(p, name: str) -> dict:
        return {"name": name, "shape": list(p.get_shape()), "dtype": p.get_element_type().to_dtype().name}

    return {
        "inputs": [describe(port, port.get_any_name())],
        "outputs": [describe(o, o.get_any_name()) for o in model.outputs],
    }
