"""Stage 1: the model as ONNX, with a static input shape, named ports, checked and slimmed.

The TorchScript exporter (``dynamo=False``) at opset 11-13 is what the 2021.4 MYRIAD
compiler reads reliably; the dynamo exporter's opset-18 graphs are not. The graph is then
simplified with onnxslim, which folds constants (the 2021.4 compiler fails on some
unfolded constant paths) and, unlike onnxsim, ships as a pure-Python wheel that keeps up
with current onnx releases.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import onnx

from oakpipe.errors import ModelError, UnsupportedModelError, UserError
from oakpipe.options import ConvertOptions
from oakpipe.stages.export_symbolics import attention_symbolics
from oakpipe.tasks.postprocessed import postprocessed_detector_problem

INPUT_NAME = "input"
SUPPORTED_MAX_OPSET = 13  # the newest opset OpenVINO 2021.4's ONNX reader knows


def example_input(options: ConvertOptions):
    """A deterministic input in the model's own range ([0, 1] after the camera contract)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    return torch.rand(options.input_shape, generator=generator)


def output_names_of(result: object) -> list[str]:
    """Name a forward's outputs: one tensor -> output; a tuple -> output0..; a dict -> its keys."""
    import torch

    if isinstance(result, torch.Tensor):
        return ["output"]
    if isinstance(result, (tuple, list)) and result and all(isinstance(r, torch.Tensor) for r in result):
        return [f"output{i}" for i in range(len(result))]
    if isinstance(result, dict) and result and all(isinstance(r, torch.Tensor) for r in result.values()):
        return [str(k) for k in result]
    problem = postprocessed_detector_problem(result)
    if problem is not None:
        raise ModelError(*problem)
    raise ModelError(
        f"the model returns {type(result).__name__}, not tensors",
        "return a tensor, a tuple of tensors or a dict of tensors",
    )


@contextlib.contextmanager
def eval_mode(module):
    """Run ``module`` in eval mode and give the user's own ``training`` flags back after.

    Export and verify must see the inference model (BatchNorm on its running statistics,
    no dropout). Each submodule's flag is saved and restored on its own, so a model the
    user left half in training mode comes back exactly as it was.
    """
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in flags:
            m.training = training


def run_forward(module, x):
    import torch

    try:
        with torch.no_grad(), eval_mode(module):
            return module(x)
    except Exception as exc:
        raise ModelError(
            f"the model's forward raised {type(exc).__name__} on an input of shape {list(x.shape)}: {exc}",
            "check --input-shape against what the model expects, or fix its forward",
        ) from exc


def _tuple_outputs(module):
    """Wrap a module so that dict outputs export as an ordered tuple."""
    import torch

    class TupleOutputs(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor):
            result = self.inner(x)
            return tuple(result.values()) if isinstance(result, dict) else result

    wrapper = TupleOutputs(module)
    wrapper.training = False  # a new module starts in training mode; .eval() would recurse
    return wrapper


def export_torch(module, options: ConvertOptions, path: Path) -> dict:
    """Export, check and slim; return the port description for the manifest."""
    import torch

    x = example_input(options)
    reference = run_forward(module, x)
    names = output_names_of(reference)
    exported = _tuple_outputs(module) if isinstance(reference, dict) else module
    buffer = io.BytesIO()  # slimmed in memory: the raw export is never written, read back and rewritten
    try:
        # torch.onnx.export sets the mode it exports in and then restores the wrapper's
        # mode recursively, which would leave a wrapped user model in train():
        # eval_mode restores every submodule's own flag afterwards.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), eval_mode(module), \
                attention_symbolics(options.opset):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                exported, (x,), buffer, dynamo=False, opset_version=options.opset,  # type: ignore[arg-type]
                input_names=[INPUT_NAME], output_names=names, do_constant_folding=True,
                training=torch.onnx.TrainingMode.EVAL,
            )
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsupportedModelError(
            f"torch.onnx.export (opset {options.opset}) failed: {first}",
            "replace the op named above with one ONNX opset 11-13 has, or try another --opset",
        ) from exc
    model = slimmed(onnx.load_from_string(buffer.getvalue()))
    onnx.save(model, str(path))
    return describe_onnx(model)


def import_onnx(source: Path, options: ConvertOptions, path: Path) -> dict:
    """Start the chain at a user's ONNX file: check it, fix its input shape, slim it."""
    model = load_checked(source)
    inputs = graph_inputs(model)
    if len(inputs) != 1:
        raise UnsupportedModelError(
            f"{source.name} has {len(inputs)} inputs ({', '.join(i.name for i in inputs)})",
            "the camera feeds one image: export a model with a single image input",
        )
    port = inputs[0]
    elem = port.type.tensor_type.elem_type
    if elem != onnx.TensorProto.FLOAT:
        raise UnsupportedModelError(
            f"input {port.name!r} of {source.name} is {onnx.TensorProto.DataType.Name(elem)}, not FLOAT",
            "export the model with a float32 image input (the camera's U8 is converted on the device)",
        )
    dims = port.type.tensor_type.shape.dim
    if len(dims) != 4:
        raise UserError(
            f"input {port.name!r} of {source.name} has rank {len(dims)}, not 4 (N,C,H,W)",
            "export the model with an NCHW image input",
        )
    for dim, value in zip(dims, options.input_shape):
        # A fixed size that differs is an error; 0, -1 (Paddle's exporter) or a named dim
        # ("?", "batch") is dynamic and takes the --input-shape value.
        if dim.HasField("dim_value") and dim.dim_value > 0 and dim.dim_value != value:
            raise UserError(
                f"{source.name} takes input {[d.dim_value or d.dim_param for d in dims]}, "
                f"but --input-shape is {list(options.input_shape)}",
                "pass the model's own --input-shape",
            )
        dim.Clear()
        dim.dim_value = value
    rename_value(model.graph, port.name, INPUT_NAME)
    onnx.save(model, str(path))
    slim_in_place(path)  # folds constants first, so axes and sizes are initializers
    onnx.save(downgrade_opset(onnx.load(str(path)), source.name), str(path))
    return describe_onnx(onnx.load(str(path)))


def default_domain_opset(model: onnx.ModelProto) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def downgrade_opset(model: onnx.ModelProto, label: str) -> onnx.ModelProto:
    """A graph newer than opset 13 (the 2021.4 reader's limit) rewritten at opset 13."""
    from oakpipe.stages.opset_downgrade import downgrade

    current = default_domain_opset(model)
    if current <= SUPPORTED_MAX_OPSET:
        return model
    try:
        return downgrade(model, SUPPORTED_MAX_OPSET)
    except Exception as exc:
        raise UnsupportedModelError(
            f"{label} uses ONNX opset {current}, which the 2021.4 MyriadX compiler cannot read, and it could not "
            f"be brought to opset {SUPPORTED_MAX_OPSET}: {str(exc).strip().splitlines()[0][:200]}",
            "re-export it at opset 11-13: torch.onnx.export(..., dynamo=False, opset_version=12)",
        ) from exc


def load_checked(path: Path) -> onnx.ModelProto:
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:
        raise UserError(
            f"{path.name} is not a valid ONNX model: {str(exc).strip().splitlines()[0]}",
            "re-export it (torch.onnx.export) and check it with onnx.checker",
        ) from exc
    return model


def graph_inputs(model: onnx.ModelProto) -> list:
    initializers = {init.name for init in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def rename_value(graph, old: str, new: str) -> None:
    if old == new:
        return
    for port in list(graph.input) + list(graph.output):
        if port.name == old:
            port.name = new
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]


def slim_in_place(path: Path) -> None:
    onnx.save(slimmed(onnx.load(str(path))), str(path))


def slimmed(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold constants and drop dead nodes; fail loudly if the result is not valid ONNX."""
    import onnxslim

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        result = onnxslim.slim(model)
    onnx.checker.check_model(result)
    return result


def describe_onnx(model: onnx.ModelProto) -> dict:
    def port(value) -> dict:
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
        return {"name": value.name, "shape": dims, "dtype": str(np.dtype(dtype))}

    return {
        "inputs": [port(v) for v in graph_inputs(model)],
        "outputs": [port(v) for v in model.graph.output],
        "opset": default_domain_opset(model) or None,
        "nodes": len(model.graph.node),
    }
