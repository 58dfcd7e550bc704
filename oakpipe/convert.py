"""``convert``: a model to ONNX, device graph, FP16 IR, MyriadX blob and NN Archive.

Each stage is a small module under ``oakpipe.stages``, declared once in
``oakpipe.stages.registry``; this module runs the declarations in the order their inputs
give, through the manifest's cache, so an unchanged second convert recomputes nothing (and
imports neither torch nor OpenVINO).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

from oakpipe.manifest import (
    Manifest,
    export_folder_kept_only_if_written,
    export_lock,
    read_manifest,
    run_stage,
    sha256_json,
)
from oakpipe.manifest_schema import ExportManifest
from oakpipe.models.source import ModelSource, parse_model_spec
from oakpipe.options import ConvertOptions
from oakpipe.precheck import check_before_work
from oakpipe.progress import Progress
from oakpipe.stages.declare import Stage, stage_order
from oakpipe.stages.registry import STAGES as REGISTERED
from oakpipe.toolchain import OPENVINO_VERSION
from oakpipe.userpaths import user_error_for_os
from oakpipe.versions import tool_versions


def ordered_stages() -> list[Stage]:
    """The declared stages (oakpipe.stages.registry) in the order their inputs give."""
    return stage_order(REGISTERED)


#: The export's stages by name, in order (verify only reports on them).
STAGES = tuple(dict.fromkeys(s.name for s in ordered_stages() if not s.report_only))


@dataclass(frozen=True)
class Export:
    """A finished export folder: its artifacts and its manifest."""

    folder: Path
    manifest: dict

    def path(self, stage: str, suffix: str = "") -> Path:
        for name in self.manifest["stages"][stage]["artifacts"]:
            if name.endswith(suffix):
                return self.folder / name
        raise KeyError(f"{stage} has no artifact ending in {suffix!r}")

    @property
    def record(self) -> ExportManifest:
        """The manifest, typed: what every reader of an export uses (oakpipe.manifest_schema)."""
        return ExportManifest.from_dict(self.manifest)

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def onnx(self) -> Path:
        return self.path("onnx", ".onnx")

    @property
    def device_onnx(self) -> Path:
        """The device graph: ONNX, or the user's IR (.xml) for a chain that started at one."""
        try:
            return self.path("device", ".onnx")
        except KeyError:
            return self.path("device", ".xml")

    @property
    def ir(self) -> Path:
        return self.path("ir", ".xml")

    @property
    def blob(self) -> Path:
        return self.path("blob", ".blob")

    @property
    def archive(self) -> Path:
        return self.path("archive", ".tar.xz")

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        shape = self.record.input_shape
        assert shape is not None, "a complete export records its input shape"
        return shape

    @classmethod
    def open(cls, folder: Path) -> "Export":
        from oakpipe.errors import UserError

        manifest = Manifest(folder, read_manifest(folder))
        if manifest.data.get("blob_skipped"):  # converted where no MyriadX compiler exists
            from oakpipe.toolchain.platforms import ELSEWHERE_HINT

            raise UserError(f"{folder} has ONNX and IR but no blob: {manifest.data['blob_skipped']}", ELSEWHERE_HINT)
        if not manifest.data.get("complete"):
            raise UserError(f"{folder} holds no complete export", "run oakpipe convert first (or again)")
        needed = [s for s in STAGES if s != "onnx" or manifest.data["model"].get("kind") != "ir"]
        for stage in needed:
            if not manifest.is_fresh(stage, manifest.stages.get(stage, {}).get("key", "")):
                raise UserError(f"{folder}: the {stage} artifact is missing or changed since convert",
                                "run oakpipe convert again")
        return cls(folder, manifest.data)


def default_folder(name: str) -> Path:
    return Path("exports") / name


def convert(options: ConvertOptions, progress: Progress | None = None, source: ModelSource | None = None) -> Export:
    """Run every stage (cached); ``source`` overrides ``options.model`` (an in-memory module)."""
    from oakpipe.extras import require_convert_extra

    require_convert_extra()  # a light install: one line on what to install, not an ImportError
    progress = progress or Progress(quiet=True)
    source = source or parse_model_spec(options.model)
    folder = Path(options.out) if options.out else default_folder(source.name)
    with export_folder_kept_only_if_written(folder):  # a refused convert leaves no empty folder
        return _checked_convert(folder, source, options, progress)


def _checked_convert(folder: Path, source: ModelSource, options: ConvertOptions, progress: Progress) -> Export:
    given_style = options.style
    options = check_before_work(options, source, folder)  # every option and file, before any stage
    if options.style != given_style and options.style is not None:
        progress.say(f"  no --style given: using the built-in style {options.style.name}")
    options, declared, built = with_declared_contract(options, source, progress, folder)
    started = time.perf_counter()
    try:
        return _convert_in(folder, source, options, progress, started, declared, built)
    except OSError as exc:  # the manifest, the lock: the user's folder refused a write
        mapped = user_error_for_os(exc, folder)
        if mapped is None:
            raise
        raise mapped from exc


def _convert_in(folder: Path, source: ModelSource, options: ConvertOptions, progress: Progress,
                started: float, declared: dict | None = None, built: object | None = None) -> Export:
    from oakpipe.estimate.record import export_estimate

    with export_lock(folder):
        manifest = Manifest.load(folder)
        manifest.data.update(describe_run(source, options, folder))
        if declared is not None:
            manifest.data[DECLARED_KEY] = declared
        stages = StageRunner(manifest, options, progress, source, module=built)
        stages.run(report_only=False)
        infos = stages.infos
        manifest.data["estimate"] = export_estimate(infos.get("blob", {}), stages.device_graph(), options.shaves)
        if manifest.data["estimate"]:
            progress.say(f"  {manifest.data['estimate']['line']}")
        manifest.data["inputs"] = infos["device"]["inputs"]
        manifest.data["outputs"] = infos.get("onnx", infos["device"])["outputs"]  # an IR's own, if it began at one
        manifest.data["verified"] = None
        manifest.data["complete"] = True  # every artifact is written; verification only reports on them
        manifest.save()
        stages.run(report_only=True)  # verify: it reports on the export, never invalidates it
        verdict = infos.get("verify")
        if verdict is not None:
            manifest.data["verified"] = verdict["passed"]
            manifest.save()
    total = time.perf_counter() - started
    progress.say(f"  {'total':<10} {total:6.2f} s" + ("  (all cached)" if stages.all_cached else ""))
    if verdict is not None and not verdict["passed"]:
        from oakpipe.errors import VerificationError

        raise VerificationError(
            f"{source.name}: {verdict['summary']}",
            f"see {folder / 'verify.md'}; the artifacts are kept but do not compute what the model computes",
        )
    return Export(folder, manifest.data)


#: The manifest's record of a model file's declared preprocessing and the file contents it was
#: read from: a cached convert reuses it instead of importing the file (and torch with it).
DECLARED_KEY = "declared_preprocessing"


def with_declared_contract(options: ConvertOptions, source: ModelSource, progress: Progress,
                           folder: Path) -> tuple[ConvertOptions, dict | None, object | None]:
    """(the options with the model's declared preprocessing filling the contract fields the
    user did not give, the record to keep in the manifest, the module if reading the
    declaration built it). A typed value that contradicts the declaration is kept and stated
    in one line."""
    from dataclasses import replace

    from oakpipe.preprocessing import Preprocessing, resolve_contract

    if source.kind not in ("python", "module"):  # ONNX and IR carry no declaration; no built-in declares one
        return options, None, None
    record, built = None, None
    if source.kind == "python":  # keyed by the file's (and its siblings') bytes, as the stages are
        fingerprint = sha256_json(source.fingerprint())
        known = Manifest.load(folder).data.get(DECLARED_KEY) or {}
        if known.get("source") == fingerprint:
            declared = Preprocessing.from_dict(known["contract"]) if known.get("contract") else None
        else:
            declared, built = _read_declaration(source, options)
        record = {"source": fingerprint, "contract": declared.to_dict() if declared else None}
    else:
        declared, built = _read_declaration(source, options)
    pre, warning = resolve_contract(options.preprocessing, options.contract_defaults, declared)
    if warning:
        progress.warn(warning)
    return replace(options, preprocessing=pre, contract_defaults=frozenset()), record, built


def _read_declaration(source: ModelSource, options: ConvertOptions) -> tuple:
    from oakpipe.models.loader import declared_contract_of

    return declared_contract_of(source, options)


def describe_run(source: ModelSource, options: ConvertOptions, folder: Path) -> dict:
    """What the export was made from; files by name and sha256, no absolute path (oakpipe.portable)."""
    from oakpipe.portable import record_file

    model: dict[str, object] = {"name": source.name, "source": source.spec, "kind": source.kind}
    if source.path is not None:  # a user's file: its name (and attr), not where it was on this machine
        model["source"] = f"{source.path.name}:{source.attr}" if source.kind == "python" else source.path.name
        model["source_file"] = record_file(source.path, folder)
    return {
        "model": model,
        "options": {
            "input_shape": list(options.input_shape), "opset": options.opset, "shaves": options.shaves,
            "weights": record_file(options.weights, folder), "style": record_file(options.style, folder),
            "alpha": options.alpha, "weights_dir": record_file(options.weights_dir, folder),
            "compiler": options.compiler,
            "task": options.task, "labels": record_file(options.labels, folder),  # --task / --labels
        },
        "preprocessing": {**options.preprocessing.to_dict(), "camera_frame": "BGR888p (U8, planar)",
                          "model_encoding": options.preprocessing.model_encoding},
        "versions": {**tool_versions(), "compiler": f"openvino {OPENVINO_VERSION} (MYRIAD)"},
    }


def code_hash(stage: Stage) -> str:
    """A stage's code is one of its tools: the files its entry modules run, computed from
    their imports (oakpipe.codehash), and the source of its declaration's own functions."""
    from oakpipe.codehash import code_digest

    return sha256_json({"modules": code_digest(stage.code), "own": [_source(f) for f in stage.own_code()]})


@functools.lru_cache(maxsize=None)
def _source(function) -> str:
    """Read once per process, so that the key cannot change under a running program.

    The function's lines as its code objects span them (nested functions included): what
    ``inspect.getsource`` returns less its trailing comments, without its tokenizer, which
    cost a cached convert more than the rest of its hashing. A lambda gives its line."""
    code = function.__code__
    lines = Path(code.co_filename).read_text(encoding="utf-8").splitlines(keepends=True)
    return "".join(lines[code.co_firstlineno - 1 : _last_line(code)])


def _last_line(code) -> int:
    ends = [end for _, end, _, _ in code.co_positions() if end is not None]
    ends += [_last_line(c) for c in code.co_consts if hasattr(c, "co_positions")]
    return max(ends, default=code.co_firstlineno)


def options_from_manifest(folder: Path, **overrides) -> ConvertOptions:
    """The options an export folder was made with (to re-verify or re-run it)."""
    from oakpipe.errors import UserError

    data = read_manifest(folder)
    if not data:
        raise UserError(f"{folder} is not an oakpipe export folder (no manifest.json)", "run oakpipe convert first")
    try:
        values = _options_in(data, folder)
    except (KeyError, TypeError, ValueError, IndexError):
        raise UserError(f"{folder / 'manifest.json'} is corrupt (its model or options are incomplete)",
                        "run oakpipe convert again to rebuild the export") from None
    values.update(overrides)
    return ConvertOptions(**values)


def _options_in(data: dict, folder: Path) -> dict:
    from oakpipe.portable import locate_file
    from oakpipe.preprocessing import Preprocessing

    opts = data["options"]
    return dict(
        model=_model_spec(data["model"], folder), input_shape=tuple(opts["input_shape"]), opset=opts["opset"],
        preprocessing=Preprocessing.from_dict(data["preprocessing"]), shaves=opts["shaves"],
        weights=locate_file(opts.get("weights"), folder, "weights"),
        style=locate_file(opts.get("style"), folder, "style image"),
        alpha=opts.get("alpha", 1.0), weights_dir=locate_file(opts.get("weights_dir"), folder, "weights folder"),
        out=folder,
        compiler=opts.get("compiler", "offline"),  # re-verifying must not switch compilers
        task=opts.get("task"), labels=locate_file(opts.get("labels"), folder, "labels file"),
    )


def _model_spec(model: dict, folder: Path) -> str:
    """MODEL for re-verifying: a built-in's name, or the user's file found again by its hash."""
    from oakpipe.portable import locate_file

    if "source_file" not in model:  # a built-in, or a manifest from before portable paths
        return model["source"]
    path = locate_file(model["source_file"], folder, "model file")
    return f"{path}:{model['source'].rsplit(':', 1)[1]}" if model["kind"] == "python" else str(path)


class StageRunner:
    """Runs the declared stages (oakpipe.stages.registry) in the order their inputs give,
    each keyed by its declaration: the digests of what it consumes, the options it names,
    its tools' versions, its code (the import closure of its entry modules and its own
    functions) and what else it declares."""

    def __init__(self, manifest: Manifest, options: ConvertOptions, progress: Progress,
                 source: ModelSource, module: object | None = None) -> None:
        self.manifest = manifest
        self.options = options
        self.progress = progress
        self.source = source
        self.all_cached = True
        self.infos: dict[str, dict] = {}  # each stage's record info, by stage name
        self._module: object | None = module  # already built when its declared contract was read

    @property
    def name(self) -> str:
        return self.manifest.data["model"]["name"]

    def module(self):
        """The PyTorch module, built at most once per convert (None for ONNX sources)."""
        if self.source.kind == "onnx":
            return None
        if self._module is None:
            from oakpipe.models.loader import build_module

            self._module = build_module(self.source, self.options)
        return self._module

    def run(self, report_only: bool) -> None:
        """Every applicable stage of one kind (the export's, or the reports on it), in order.

        A stage that does not apply leaves no record (unless another declaration of its name
        applies); one skipped here (``Stage.skip``) takes the stages consuming it along."""
        stages = [s for s in ordered_stages() if s.report_only == report_only]
        applicable = [s for s in stages if s.applies(self)]
        for stage in stages if not report_only else ():  # a report (verify) keeps its last record
            self.manifest.data.pop(f"{stage.name}_skipped", None)  # e.g. blob_skipped: set again below if so
            if all(other.name != stage.name for other in applicable):
                self.manifest.stages.pop(stage.name, None)
        skipped: set[str] = set()
        for stage in applicable:
            if skipped & set(stage.consumes):
                skipped.add(stage.name)
                self.manifest.stages.pop(stage.name, None)  # it would no longer match this graph
                continue
            why = stage.skip(self)
            if why is not None:
                skipped.add(stage.name)
                self.manifest.stages.pop(stage.name, None)
                self.manifest.data[f"{stage.name}_skipped"] = why[0]
                self.progress.say(f"  {stage.name:<10} skipped: {why[0]} -> {why[1]}")
                continue
            self.infos[stage.name] = self._run(stage)
            stage.done(self, self.infos[stage.name])

    def _run(self, stage: Stage) -> dict:
        names = stage.artifacts(self)
        record, cached = run_stage(self.manifest, stage.name, self.key(stage), names,
                                   lambda paths: stage.body(self, paths), self.options.use_cache,
                                   invalidates_export=not stage.report_only)
        self.all_cached &= cached
        self.progress.stage_done(stage.name, record.seconds, cached, ", ".join(names))
        return record.info

    def key(self, stage: Stage) -> dict:
        """What decides the stage's output, all from its declaration."""
        return {"consumes": {name: self.sha(name) for name in stage.consumes},
                "options": {name: _keyed(getattr(self.options, name)) for name in stage.options},
                "tools": tool_versions(*stage.tools), "code": code_hash(stage), **stage.key(self)}

    def sha(self, stage: str) -> str:
        """One digest over all of a stage's artifacts (an IR's .bin as well as its .xml)."""
        artifacts = self.manifest.stages[stage]["artifacts"]
        if len(artifacts) == 1:
            return next(iter(artifacts.values()))
        return sha256_json(artifacts)

    def device_graph(self) -> Path:
        """The device ONNX, or the user's IR when the chain started at one."""
        for name in self.manifest.stages["device"]["artifacts"]:
            if name.endswith((".onnx", ".xml")):
                return self.manifest.folder / name
        raise KeyError("device graph")


def _keyed(value: object) -> object:
    """An option as key material: a value type by its dict (the camera contract)."""
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else value


__all__ = ["convert", "Export", "ConvertOptions"]
