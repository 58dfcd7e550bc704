"""Run the same inputs through each stage of the chain.

Every runner returns, per input, a dict of output name -> float32 array. ``fp16_outputs``
rounds weights and every module's output to float16 (values past 65504 become inf, as on
the device): verify uses it to name the first PyTorch module that loses FP16 precision
(the FP16 stage itself runs the exported graph with every tensor rounded, fp16_onnx.py).
Neither onnxruntime nor OpenVINO gives true FP16 arithmetic on this CPU (OpenVINO would
silently use bf16).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx

from oakpipe.stages.onnx_export import eval_mode

Outputs = dict[str, np.ndarray]


def torch_outputs(module, inputs: list[np.ndarray], names: list[str]) -> list[Outputs]:
    import torch

    results = []
    with torch.no_grad(), eval_mode(module):
        for x in inputs:
            results.append(_named(module(torch.from_numpy(x)), names))
    return results


def torch64_outputs(module, inputs: list[np.ndarray], names: list[str]) -> list[Outputs] | None:
    """The same model in FP64 on the same inputs (a copy; None if the model cannot run in
    FP64): how far PyTorch's own FP32 result is from the exact one."""
    import torch

    try:
        exact = copy.deepcopy(module).double().eval()
        with torch.no_grad():
            return [_named(exact(torch.from_numpy(x).double()), names) for x in inputs]
    except Exception:  # float32-only code in the forward (explicit dtypes): no FP64 reference
        return None


#: Relative size of the rounding ``rounded64_outputs`` puts on every layer's output: one FP32
#: rounding of a result (unit roundoff eps/2) plus as much again for the arithmetic that made it.
LAYER_ROUNDING = float(np.finfo(np.float32).eps)
#: Runs of it, each with its own seeded noise: one run's distance from FP64 varied 4-5x between
#: seeds on a random-weight EfficientNet-B0 (0.015 to 0.075 on one random frame), so the
#: judgement takes the largest of a few, not one that may happen to be small.
ROUNDING_RUNS = 3


def rounded64_outputs(module, inputs: list[np.ndarray], names: list[str],
                      runs: int = ROUNDING_RUNS) -> Iterator[list[Outputs]]:
    """Up to ``runs`` runs (seeds 0, 1, ...) of the model in FP64 with every leaf module's output
    multiplied by (1 + d), d uniform in +-LAYER_ROUNDING: how far FP32-sized rounding at every
    layer moves the outputs. Each run, a list of outputs per input, is computed when asked for
    (a run costs about two FP64 passes); nothing when the model cannot run in FP64.

    It measures how much the model amplifies rounding, whatever order an FP32 runtime sums in.
    PyTorch FP32's own distance from FP64 is one sample of that, and a lucky one: its reductions
    are blocked or pairwise, onnxruntime's and OpenVINO's run longer sequential sums (onnxruntime's
    GlobalAveragePool over 112x112: 5.6e-7 relative error against PyTorch's 4.2e-8), and a
    random-weight EfficientNet-B0 turns such per-layer differences into logits 0.05-2 apart
    (of up to 760). Ops written as functions in forward() (x * y, torch.cat) are not modules
    and get no rounding here: the measure errs on the strict side."""
    import torch

    try:
        exact = copy.deepcopy(module).double().eval()
    except Exception:  # a module that cannot be copied or cast: no measure, PyTorch's own decides
        return
    for seed in range(runs):
        generator = torch.Generator().manual_seed(seed)
        handles = [layer.register_forward_hook(_layer_rounding(generator)) for layer in exact.modules()
                   if next(layer.children(), None) is None]
        try:
            with torch.no_grad():
                run = [_named(exact(torch.from_numpy(x).double()), names) for x in inputs]
        except Exception:  # float32-only code in the forward (explicit dtypes), as for torch64_outputs
            return
        finally:
            for handle in handles:
                handle.remove()
        yield run


def _layer_rounding(generator):
    import torch

    def hook(_module, _inputs, output):
        if not (isinstance(output, torch.Tensor) and output.is_floating_point()):
            return None
        noise = torch.empty(output.shape, dtype=torch.float32).uniform_(-LAYER_ROUNDING, LAYER_ROUNDING,
                                                                         generator=generator)
        return output * (1 + noise.to(output.dtype))  # noise drawn in FP32: half the cost, same size

    return hook


def _named(result, names: list[str]) -> Outputs:
    import torch

    if isinstance(result, torch.Tensor):
        values = [result]
    elif isinstance(result, dict) and all(n in result for n in names):
        return {n: result[n].detach().float().numpy() for n in names}  # by name: a blob may reorder outputs
    elif isinstance(result, dict):
        values = list(result.values())
    else:
        values = list(result)
    return {n: v.detach().float().numpy() for n, v in zip(names, values)}


def fp16_outputs(module, inputs: list[np.ndarray], names: list[str]) -> tuple[list[Outputs], dict[str, list]]:
    """FP16-rounded run; also returns each module's FP16 output per input, for layer blame."""
    import torch

    emulated = copy.deepcopy(module).eval()
    with torch.no_grad():
        for tensor in list(emulated.parameters()) + list(emulated.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
    captured: dict[str, list] = {}
    handles = [m.register_forward_hook(_rounding_hook(name or "(model)", captured))
               for name, m in emulated.named_modules()]
    try:
        results = []
        with torch.no_grad():
            for x in inputs:
                x16 = torch.from_numpy(x).half().float()
                results.append(_named(emulated(x16), names))
    finally:
        for handle in handles:
            handle.remove()
    return results, captured


def module_outputs(module, x: np.ndarray) -> dict[str, np.ndarray]:
    """Each named module's (first tensor) output in FP32, for comparison with FP16."""
    import torch

    captured: dict[str, list] = {}
    handles = [m.register_forward_hook(_recording_hook(name or "(model)", captured))
               for name, m in module.named_modules()]
    try:
        with torch.no_grad(), eval_mode(module):
            module(torch.from_numpy(x))
    finally:
        for handle in handles:
            handle.remove()
    return {k: v[0] for k, v in captured.items()}


def _first_tensor(output):
    import torch

    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    if isinstance(output, dict) and output:
        first = next(iter(output.values()))
        return first if isinstance(first, torch.Tensor) else None
    return None


def _rounding_hook(name: str, captured: dict):
    import torch

    def hook(_module, _inputs, output):
        def round16(t):
            return t.half().float() if isinstance(t, torch.Tensor) and t.is_floating_point() else t

        if isinstance(output, torch.Tensor):
            rounded = round16(output)
        elif isinstance(output, tuple):
            rounded = tuple(round16(t) for t in output)
        elif isinstance(output, list):
            rounded = [round16(t) for t in output]
        elif isinstance(output, dict):
            rounded = {k: round16(v) for k, v in output.items()}
        else:
            return None
        first = _first_tensor(rounded)
        if first is not None:
            captured.setdefault(name, []).append(first.detach().numpy().copy())
        return rounded

    return hook


def _recording_hook(name: str, captured: dict):
    def hook(_module, _inputs, output):
        first = _first_tensor(output)
        if first is not None:
            captured.setdefault(name, []).append(first.detach().float().numpy().copy())

    return hook


def onnx_session(model: Path | bytes):
    """An onnxruntime session that runs the graph as it is written, the same on any CPU.

    Graph optimizations stop at the basic level (constant folding, removing redundant nodes):
    the higher levels swap in onnxruntime's own fused kernels (QuickGelu, FusedConv) and, at the
    default level, the NCHWc layout, whose blocked convolutions and pooling depend on the CPU's
    vector width (onnxruntime calls such a model "hardware specific") and sum longer runs
    sequentially: on a random-weight EfficientNet-B0 they moved the logits 1.94 from FP64
    where the basic level's moved them 0.08 (PyTorch FP32's: 0.016). Verify judges the export,
    not which kernels this machine's onnxruntime picks."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), options,
                                providers=["CPUExecutionProvider"])


def onnx_outputs(path: Path, feeds: list[np.ndarray], names: list[str]) -> list[Outputs]:
    session = onnx_session(path)
    input_name = session.get_inputs()[0].name
    results = []
    for x in feeds:
        values = session.run(names, {input_name: x})
        results.append({n: np.asarray(v, np.float32) for n, v in zip(names, values)})
    return results


def ir_outputs(xml: Path, frames: list[np.ndarray], names: list[str]) -> list[Outputs]:
    from oakpipe.stages.ir import compile_for_host

    compiled = compile_for_host(xml)
    results = []
    for frame in frames:
        result = compiled(frame[None])
        results.append({n: np.asarray(result[compiled.output(n)], np.float32) for n in names})
    return results


def ov2021_outputs(device_graph: Path, frames: list[np.ndarray], names: list[str]) -> list[Outputs]:
    """The device graph read by OpenVINO 2021.4 (the compiler's frontend), run on its CPU."""
    from oakpipe.toolchain import infer_with_2021_frontend

    results = infer_with_2021_frontend(device_graph, [frame[None] for frame in frames])
    return [{n: r[n] for n in names} for r in results]


def onnx_intermediates(path: Path | onnx.ModelProto, feed: np.ndarray) -> dict[str, np.ndarray]:
    """Every float tensor the graph (a file, or a loaded model) computes, by name, in graph order."""
    return next(onnx_intermediates_of(path, [feed]))


def onnx_intermediates_of(path: Path | onnx.ModelProto, feeds: list[np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    """``onnx_intermediates`` for several feeds through one session (loading, shape inference
    and session set-up cost more than a run on a large graph), one feed's tensors at a time."""
    loaded = path if isinstance(path, onnx.ModelProto) else onnx.load(str(path))
    model = onnx.shape_inference.infer_shapes(loaded)
    graph = model.graph
    known = {v.name: v for v in list(graph.value_info) + list(graph.output)}
    wanted = []
    for node in graph.node:
        for name in node.output:
            info = known.get(name)
            if info is not None and info.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
                wanted.append(name)
    existing = {o.name for o in graph.output}
    graph.output.extend(known[n] for n in wanted if n not in existing)
    session = onnx_session(model.SerializeToString())
    port = session.get_inputs()[0].name
    for feed in feeds:
        yield dict(zip(wanted, (np.asarray(v) for v in session.run(wanted, {port: feed}))))


def node_of_tensor(path: Path) -> dict[str, str]:
    """tensor name -> the name of the node that computes it."""
    return {out: node.name for node in onnx.load(str(path)).graph.node for out in node.output}
