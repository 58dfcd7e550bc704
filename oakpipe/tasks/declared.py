"""``--task`` for models that do not say what they are (a plain nn.Module, an ONNX file).

An Ultralytics model names its task itself (oakpipe.tasks.ultralytics_model); any other
model is told with ``--task``, and its single output must have the layout the task's
depthai-nodes parser reads:

- ``classify``: [1, N] logits or probabilities -> ClassificationParser (top-5);
- ``segment-semantic``: [1, C, H, W] per-class scores -> SegmentationParser (argmax);
- ``depth``: [1, 1, H, W] or [1, H, W] -> MapOutputParser (depthai-nodes' parser for depth
  and other per-pixel maps).

Class names come from ``--labels FILE`` (one per line) or the module's ``oakpipe_labels`` /
``class_names`` attribute; without them the classes are named by their index. Whether a
classifier's output is already softmaxed is measured on the exported graph (non-negative and
summing to 1 on a random input), so the parser neither applies softmax twice nor skips it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from oakpipe.errors import UserError
from oakpipe.tasks.info import TaskInfo
from oakpipe.tasks.labels import read_labels

DECLARABLE = ("classify", "segment-semantic", "depth")
LABEL_ATTRIBUTES = ("oakpipe_labels", "class_names")


def declared_task(task: str, labels: Path | None, module, onnx_path: Path, info: dict) -> TaskInfo:
    """The TaskInfo of a model declared with ``--task``; one line of UserError if it cannot be."""
    outputs = info["outputs"]
    if len(outputs) != 1:
        raise UserError(f"--task {task} reads one output; the model has {len(outputs)} "
                        f"({', '.join(o['name'] for o in outputs)})", "return a single tensor from forward()")
    name, shape = outputs[0]["name"], [d if isinstance(d, int) else -1 for d in outputs[0]["shape"]]
    family = f"declared with --task {task}"
    if task == "depth":
        if not (len(shape) == 4 and shape[:2] == [1, 1] or len(shape) == 3 and shape[0] == 1):
            raise UserError(f"--task depth reads a [1, 1, H, W] or [1, H, W] map; output {name} is {shape}",
                            "return the depth map as one channel")
        return TaskInfo("depth", [], [name], family=family)
    classes_axis = {"classify": 2, "segment-semantic": 4}[task]
    if len(shape) != classes_axis or shape[0] != 1 or shape[1] < 2:
        layout = "[1, N] class scores" if task == "classify" else "[1, C, H, W] per-class scores"
        raise UserError(f"--task {task} reads {layout}; output {name} is {shape}", "reshape the output in forward()")
    names = class_names(labels, module, shape[1])
    return TaskInfo(task, names, [name], family=family, is_softmax=is_probability(onnx_path, shape[1]))


def class_names(labels: Path | None, module, count: int) -> list[str]:
    """From --labels, else the module's attribute, else the index; the count must match the head."""
    if labels is not None:
        names = read_labels(Path(labels))
        where = f"--labels {labels}"
    else:
        found = next((getattr(module, a) for a in LABEL_ATTRIBUTES if getattr(module, a, None) is not None), None)
        if found is None:
            return [str(i) for i in range(count)]
        names = [str(found[i]) for i in sorted(found)] if isinstance(found, dict) else [str(n) for n in found]
        where = "the model's class names"
    if len(names) != count:
        raise UserError(f"{where} lists {len(names)} classes but the model outputs {count}",
                        "give one name per output class, one per line, in output order")
    return names


def is_probability(onnx_path: Path, classes: int) -> bool:
    """True when the exported output is already a softmax over the class axis (axis 1)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feed = {}
    for port in session.get_inputs():
        dims = [d if isinstance(d, int) else 1 for d in port.shape]
        feed[port.name] = np.random.default_rng(0).random(dims, dtype=np.float32)
    out = np.asarray(session.run(None, feed)[0], np.float64)
    return bool(out.min() >= 0 and np.allclose(out.sum(axis=1), 1.0, atol=1e-3))
