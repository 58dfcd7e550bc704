"""Turn a ModelSource into a ready ``nn.Module`` in eval mode (imports torch)."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

import torch
from torch import nn

from oakpipe.errors import ModelError, UserError
from oakpipe.manifest import sha256_file
from oakpipe.models import BUILTINS
from oakpipe.models.source import ModelSource
from oakpipe.options import ConvertOptions
from oakpipe.preprocessing import Preprocessing, declared_contract


def build_module(source: ModelSource, options: ConvertOptions) -> nn.Module:
    if source.kind == "builtin":
        spec = BUILTINS[source.name]
        check_style_options(spec.takes_style, options, source.name)
        module = spec.build(options)
    elif source.kind in ("python", "module"):
        check_style_options(False, options, source.spec)
        module = _module_from_file(source) if source.kind == "python" else source.module  # type: ignore[assignment]
        if options.weights is not None:
            load_weights(module, options.weights)
    elif source.kind == "ultralytics":
        from oakpipe.tasks.ultralytics_model import build_for_export

        module = build_for_export(source.path, source.spec, options.labels)
    else:
        raise AssertionError(f"no torch module for a {source.kind} model")
    if source.kind in ("python", "module"):
        module = task_cut(module, options)
    if source.kind == "module":
        return module  # the caller's object: export and verify pin eval mode and restore its flags
    return module.eval()


def task_cut(module: nn.Module, options: ConvertOptions) -> nn.Module:
    """A torchvision SSD becomes its RVC2 cut (oakpipe.tasks.torchvision_ssd), which declares
    its task and camera contract; any other module is returned as it is."""
    from oakpipe.tasks.torchvision_ssd import cut_if_ssd

    return cut_if_ssd(module, options.input_shape)


def declared_contract_of(source: ModelSource, options: ConvertOptions) -> tuple[Preprocessing | None, nn.Module | None]:
    """(the preprocessing a user's model declares (``oakpipe_preprocessing``), the module if it
    had to be built for that). Read from its class or factory when it carries one (cheap: the
    file is imported, nothing is built), else from the built module, which the export reuses."""
    if source.kind == "module":
        module = build_module(source, options)  # the caller's object, or its task cut (a torchvision SSD)
        return declared_contract(module), module
    from oakpipe.tasks.torchvision_ssd import is_torchvision_ssd

    maker = getattr(_import_file(source), str(source.attr), None)
    declared = declared_contract(maker)
    if declared is None and maker is not None and (not inspect.isclass(maker) or is_torchvision_ssd(maker)):
        # a factory may set it on the instance; an SSD class's contract is its transform's, known once built
        module = build_module(source, options)
        return declared_contract(module), module
    return declared, None


def check_style_options(takes_style: bool, options: ConvertOptions, name: str) -> None:
    if takes_style and options.style is None:
        raise UserError(f"{name} needs a style image", f"pass --style STYLE.jpg to convert {name}")
    if not takes_style and options.style is not None:
        raise UserError(f"{name} takes no style image", "drop --style, or use the stylizer or adain model")


def _module_from_file(source: ModelSource) -> nn.Module:
    assert source.path is not None and source.attr is not None
    code = _import_file(source)
    if not hasattr(code, source.attr):
        found = sorted(n for n, v in vars(code).items() if _is_module_maker(v))
        hint = f"it defines: {', '.join(found)}" if found else "define an nn.Module subclass there"
        raise UserError(f"{source.path.name} has no {source.attr!r}", hint)
    return _instantiate(getattr(code, source.attr), source.attr)


def _import_file(source: ModelSource):
    """The user's file as a Python module, executed once per content (reading the declared
    contract and building the module share it)."""
    assert source.path is not None
    cache_key = (source.path, sha256_file(source.path))
    if cache_key not in _IMPORTED:
        _IMPORTED[cache_key] = _execute_file(source.path)
    return _IMPORTED[cache_key]


_IMPORTED: dict = {}


def _execute_file(path: Path):
    module_name = f"oakpipe_user_model_{abs(hash(path))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"{path} cannot be imported as Python", "check the file")
    code = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        sys.modules[module_name] = code
        spec.loader.exec_module(code)
    except Exception as exc:
        raise ModelError(f"importing {path.name} raised {type(exc).__name__}: {exc}", "fix the file") from exc
    finally:
        sys.path.remove(str(path.parent))
    return code


def _is_module_maker(value: object) -> bool:
    return (inspect.isclass(value) and issubclass(value, nn.Module) and value is not nn.Module) or (
        inspect.isfunction(value)
    )


def _instantiate(maker: object, attr: str) -> nn.Module:
    if isinstance(maker, nn.Module):
        return maker
    if not callable(maker):
        raise UserError(f"{attr} is neither an nn.Module subclass nor a function", "point NAME at one")
    try:
        module = maker()
    except TypeError as exc:
        raise UserError(
            f"{attr}() cannot be called without arguments: {exc}",
            "point NAME at a function that takes no arguments and returns the module",
        ) from exc
    except Exception as exc:
        raise ModelError(f"{attr}() raised {type(exc).__name__}: {exc}", "fix the model code") from exc
    if not isinstance(module, nn.Module):
        raise UserError(f"{attr}() returned {type(module).__name__}, not an nn.Module", "return the module")
    return module


def load_weights(module: nn.Module, path: Path) -> None:
    """Load a state dict (safely: ``weights_only=True``) and say exactly what does not fit."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise weights_refused(path, exc) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"--weights {path} holds a {type(state).__name__}, not a state dict", "save model.state_dict()")
    describe_mismatch(module, state, str(path))
    module.load_state_dict(state, strict=True)


def weights_refused(path: Path, exc: Exception) -> UserError:
    """Why a weights file was not loaded, in our words: torch's own message advises
    ``weights_only=False``, which would run whatever code an untrusted file carries."""
    import pickle
    import re

    if isinstance(exc, pickle.UnpicklingError):
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" (it calls {found.group(1)})" if found else ""
        return UserError(
            f"--weights {path} is refused: it is not plain tensors but a pickle with code{what}, "
            "which loading would run",
            "save plain tensors with torch.save(model.state_dict(), path), from code you trust",
        )
    first = next((line for line in str(exc).splitlines() if line.strip() and "weights_only" not in line), "")
    return UserError(
        f"--weights {path} is not a PyTorch state dict file ({type(exc).__name__}{': ' + first[:120] if first else ''})",
        "save it with torch.save(model.state_dict(), path)",
    )


def describe_mismatch(module: nn.Module, state: dict, label: str) -> None:
    """Raise a ModelError listing missing, unexpected and wrongly shaped keys."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(v.shape)
    ]
    if not (missing or unexpected or shapes):
        return
    parts = []
    for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            shown = ", ".join(items[:6]) + (f" (+{len(items) - 6} more)" if len(items) > 6 else "")
            parts.append(f"{title}: {shown}")
    raise ModelError(
        f"weights {label} do not match the model; " + "; ".join(parts),
        "use weights saved from this exact architecture",
    )
