"""What MODEL on the command line names, resolved without importing torch.

``halve`` (a built-in), ``path/to/file.py:NAME`` (a PyTorch module in a user's file),
``path/to/model.onnx`` (start the chain at ONNX), or ``path/to/model.xml`` (an OpenVINO IR
v10 from the 2021.4 Model Optimizer, with its ``.bin`` beside it). The fingerprint feeds the cache key, so
it hashes file contents rather than building the model: a cached convert stays fast.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from oakpipe.errors import UserError
from oakpipe.manifest import sha256_file
from oakpipe.models import BUILTINS


@dataclass(frozen=True)
class ModelSource:
    kind: str  # "builtin" | "python" | "onnx" | "ir" | "module" (an nn.Module object, Python API) | "ultralytics"
    name: str  # the export's name: file names and the default folder derive from it
    spec: str
    path: Path | None = None
    attr: str | None = None
    module: object | None = None

    def fingerprint(self) -> dict:
        """Content hashes of everything the model's definition comes from."""
        if self.kind == "builtin":
            files = BUILTINS[self.name].source_files
            return {"builtin": self.name, "sources": {f.name: sha256_file(f) for f in files}}
        if self.kind == "module":
            return module_fingerprint(self.module)
        assert self.path is not None
        data: dict[str, object] = {self.kind: str(self.path.name), "sha256": sha256_file(self.path)}
        if self.kind == "ultralytics":
            data["name"] = Path(self.spec).name  # yolo11n.yaml and yolo11s.yaml share one file
        if self.kind == "ir":
            data["bin_sha256"] = sha256_file(self.path.with_suffix(".bin"))
        if self.kind == "python":
            data["attr"] = self.attr
            # Local helper modules beside the file often hold the layers: key them too.
            siblings = sorted(p for p in self.path.parent.glob("*.py") if p != self.path)
            data["siblings"] = {p.name: sha256_file(p) for p in siblings[:50]}
        return data


def module_fingerprint(module) -> dict:
    """An in-memory module: its class's source file and every tensor of its state."""
    import hashlib
    import inspect

    digest = hashlib.sha256()
    for key, tensor in module.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    try:
        source_file = Path(inspect.getsourcefile(type(module)) or "")
        code = sha256_file(source_file) if source_file.is_file() else None
    except TypeError:
        code = None
    return {"module": type(module).__qualname__, "code": code, "state": digest.hexdigest()}


def source_of_module(module, name: str | None = None) -> ModelSource:
    label = name or type(module).__name__.lower()
    return ModelSource("module", safe_name(label), f"<{type(module).__qualname__} object>", module=module)


#: An Ultralytics checkpoint (best.pt) or model YAML (oakpipe.tasks.ultralytics_model loads them).
ULTRALYTICS_SUFFIXES = (".pt", ".yaml", ".yml")


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "model"


def names_a_model(spec: str) -> bool:
    """Whether ``spec`` has the form of a MODEL (built-in, file.py:NAME, .onnx, .xml, .py),
    as opposed to a folder; says nothing about whether that model exists."""
    if spec in BUILTINS:
        return True
    file_part = spec.rsplit(":", 1)[0] if ":" in spec else spec
    return Path(file_part).suffix.lower() in (".py", ".onnx", ".xml")


def export_name(path: Path, attr: str) -> str:
    """A class names the model (``net.py:UNet`` -> unet); a factory function does not
    (``net.py:make`` -> net, the file's name). Read with ``ast``, without importing."""
    import ast

    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return attr.lower()
    functions = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return path.stem.lower() if attr in functions else attr.lower()


def parse_model_spec(spec: str) -> ModelSource:
    """Resolve MODEL, or raise a UserError that says what MODEL may be."""
    if spec in BUILTINS:
        return ModelSource("builtin", spec, spec)
    if ":" in spec and spec.rsplit(":", 1)[0].endswith(".py"):
        file_part, attr = spec.rsplit(":", 1)
        path = Path(file_part)
        if not path.is_file():
            raise UserError(f"model file {file_part} not found", "check the path before ':NAME'")
        if not attr.isidentifier():
            raise UserError(f"{attr!r} is not a Python name", "use path/to/file.py:ClassName")
        return ModelSource("python", safe_name(export_name(path, attr)), spec, path.resolve(), attr)
    path = Path(spec)
    if path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise UserError(f"ONNX file {spec} not found", "check the path")
        return ModelSource("onnx", safe_name(path.stem), spec, path.resolve())
    if path.suffix.lower() == ".xml":
        if not path.is_file():
            raise UserError(f"IR file {spec} not found", "check the path")
        if not path.with_suffix(".bin").is_file():
            raise UserError(f"{spec} has no {path.with_suffix('.bin').name} beside it", "keep the IR's .xml and .bin together")
        return ModelSource("ir", safe_name(path.stem), spec, path.resolve())
    if path.suffix.lower() in ULTRALYTICS_SUFFIXES:
        return ultralytics_source(spec)
    if path.suffix == ".py":
        raise UserError(
            f"{spec} names a file but not the model in it", f"use {spec}:NAME, NAME a Module class or factory"
        )
    names = ", ".join(sorted(BUILTINS))
    raise UserError(
        f"unknown model {spec!r}",
        f"use a built-in ({names}), path/to/file.py:NAME, path/to/model.onnx, path/to/model.xml (IR) "
        "or an Ultralytics best.pt / yolo11n.yaml",
    )


def ultralytics_source(spec: str) -> ModelSource:
    """A ``best.pt`` or a YOLO YAML (a file, or one of the YAMLs Ultralytics ships, by name)."""
    path = Path(spec)
    if not path.is_file() and path.suffix.lower() != ".pt":
        from oakpipe.tasks.ultralytics_model import bundled_yaml

        path = bundled_yaml(spec)
    if not path.is_file():
        if path.suffix.lower() == ".pt":
            raise UserError(f"checkpoint {spec} not found", "check the path to best.pt")
        raise UserError(f"model YAML {spec} not found (not a file, nor a YAML Ultralytics ships)",
                        "check the path, or name a bundled one such as yolo11n.yaml")
    return ModelSource("ultralytics", safe_name(Path(spec).stem), spec, path.resolve())
