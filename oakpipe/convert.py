"""``convert``: a model to ONNX, device graph, FP16 IR, MyriadX blob and NN Archive.

Each stage is a small module under ``oakpipe.stages``; this module only chains them
through the manifest's cache, so an unchanged second convert recomputes nothing (and
imports neither torch nor OpenVINO).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

from oakpipe.manifest import Manifest, export_lock, read_manifest, run_stage, sha256_file, sha256_json
from oakpipe.manifest_schema import ExportManifest
from oakpipe.models.source import ModelSource, parse_model_spec
from oakpipe.options import ConvertOptions
from oakpipe.precheck import check_before_work
from oakpipe.progress import Progress
from oakpipe.toolchain import OPENVINO_VERSION
from oakpipe.userpaths import user_error_for_os
from oakpipe.versions import tool_versions

STAGES = ("onnx", "device", "ir", "blob", "archive")


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


def extra_inputs(options: ConvertOptions) -> dict:
    """Hashes of the files besides the model source that decide the export."""
    files = {"weights": options.weights, "style": options.style, "labels": options.labels}
    data: dict[str, object] = {k: sha256_file(Path(v)) for k, v in files.items() if v is not None}
    if options.weights_dir is not None:
        data["weights_dir"] = {p.name: sha256_file(p) for p in sorted(Path(options.weights_dir).glob("*.pth"))}
    return data


def convert(options: ConvertOptions, progress: Progress | None = None, source: ModelSource | None = None) -> Export:
    """Run every stage (cached); ``source`` overrides ``options.model`` (an in-memory module)."""
    from oakpipe.extras import require_convert_extra

    require_convert_extra()  # a light install: one line on what to install, not an ImportError
    progress = progress or Progress(quiet=True)
    source = source or parse_model_spec(options.model)
    folder = Path(options.out) if options.out else default_folder(source.name)
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
    with export_lock(folder):
        manifest = Manifest.load(folder)
        manifest.data.update(describe_run(source, options, folder))
        if declared is not None:
            manifest.data[DECLARED_KEY] = declared
        stages = StageRunner(manifest, options, progress, module=built)
        if source.kind == "ir":  # a 2021.4 IR is already a device graph: nothing to export
            manifest.stages.pop("onnx", None)
            device_info = model_info = stages.device_from_ir(source)
        else:
            model_info = stages.onnx(source)
            device_info = stages.device()
        stages.ir()
        blob_info: dict = {}
        if stages.blob_skipped() is None:
            blob_info = stages.blob()
            stages.archive()
        from oakpipe.estimate.record import export_estimate

        manifest.data["estimate"] = export_estimate(blob_info, stages.device_graph(), options.shaves)
        if manifest.data["estimate"]:
            progress.say(f"  {manifest.data['estimate']['line']}")
        manifest.data["inputs"] = device_info["inputs"]
        manifest.data["outputs"] = model_info["outputs"]
        manifest.data["verified"] = None
        manifest.data["complete"] = True  # every artifact is written; verification only reports on them
        manifest.save()
        verifiable = options.verify and source.kind != "ir"  # an IR has no upstream model to compare with
        verdict = stages.verify(source) if verifiable else None
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


PACKAGE = Path(__file__).parent
BUILTIN_PHOTO = PACKAGE / "data" / "astronaut.jpg"  # verify's default photograph (oakpipe.verify.samples)


def code_hash(*modules: str, runner: str | tuple[str, ...]) -> str:
    """A stage's code is one of its tools: the files its modules run, computed from their
    imports (oakpipe.codehash), and the StageRunner method that drives it."""
    from oakpipe.codehash import code_digest

    names = (runner,) if isinstance(runner, str) else runner
    return sha256_json({"modules": code_digest(modules), "runner": [_runner_source(name) for name in names]})


def attach_task(info: dict, module, options: ConvertOptions | None = None, onnx_path: Path | None = None) -> dict:
    """Keep what a task model's outputs mean (oakpipe.tasks) in the ONNX stage's record: the
    model's own (Ultralytics), or the one ``--task`` declares (oakpipe.tasks.declared)."""
    from oakpipe.errors import UserError

    task = getattr(module, "oakpipe_task", None)
    declared = options.task if options is not None else None
    if task is not None and declared and declared != task.task:
        raise UserError(f"--task {declared} does not match the model's own task {task.task}",
                        f"drop --task (or use --task {task.task})")
    if task is None and declared:
        from oakpipe.tasks.declared import DECLARABLE, declared_task

        if declared not in DECLARABLE:
            raise UserError(f"--task {declared} needs a model that describes its head (an Ultralytics best.pt)",
                            f"for other models use --task {' / '.join(DECLARABLE)}")
        assert onnx_path is not None and options is not None  # declared comes from options
        task = declared_task(declared, options.labels, module, onnx_path, info)
    return {**info, "task": task.to_dict()} if task is not None else info


@functools.lru_cache(maxsize=None)
def _runner_source(name: str) -> str:
    """Read once per process, so that the key cannot change under a running program.

    The method's lines as its code objects span them (nested functions included): what
    ``inspect.getsource`` returns less its trailing comments, without its tokenizer, which
    cost a cached convert more than the rest of its hashing."""
    code = getattr(StageRunner, name).__code__
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
    """The five stages, each keyed by what decides its output."""

    def __init__(self, manifest: Manifest, options: ConvertOptions, progress: Progress,
                 module: object | None = None) -> None:
        self.manifest = manifest
        self.options = options
        self.progress = progress
        self.all_cached = True
        self._module: object | None = module  # already built when its declared contract was read

    def module(self, source: ModelSource):
        """The PyTorch module, built at most once per convert (None for ONNX sources)."""
        if source.kind == "onnx":
            return None
        if self._module is None:
            from oakpipe.models.loader import build_module

            self._module = build_module(source, self.options)
        return self._module

    def _run(self, stage: str, key: dict, names: list[str], body, invalidates_export: bool = True) -> dict:
        record, cached = run_stage(self.manifest, stage, key, names, body, self.options.use_cache,
                                   invalidates_export)
        self.all_cached &= cached
        self.progress.stage_done(stage, record.seconds, cached, ", ".join(names))
        return record.info

    def _sha(self, stage: str) -> str:
        """One digest over all of a stage's artifacts (an IR's .bin as well as its .xml)."""
        artifacts = self.manifest.stages[stage]["artifacts"]
        if len(artifacts) == 1:
            return next(iter(artifacts.values()))
        return sha256_json(artifacts)

    def onnx(self, source: ModelSource) -> dict:
        options = self.options
        key = {
            "source": source.fingerprint(), "extra": extra_inputs(options),
            "input_shape": options.input_shape, "opset": options.opset, "alpha": options.alpha,
            "tools": tool_versions("oakpipe", "torch", "onnx", "onnxslim"),
            "code": code_hash("oakpipe.stages.onnx_export", "oakpipe.models.loader", "oakpipe.tasks.ultralytics_model",
                              "oakpipe.tasks.declared", runner="onnx"),
            "task": options.task,
        }

        def body(paths: dict[str, Path]) -> dict:
            from oakpipe.stages import onnx_export

            path = paths[f"{source.name}.onnx"]
            if source.kind == "onnx":
                assert source.path is not None
                return attach_task(onnx_export.import_onnx(source.path, options, path), None, options, path)
            info = onnx_export.export_torch(self.module(source), options, path)
            return attach_task(info, self.module(source), options, path)

        return self._run("onnx", key, [f"{source.name}.onnx"], body)

    def device(self) -> dict:
        name = self.manifest.data["model"]["name"]
        key = {"onnx": self._sha("onnx"), "preprocessing": self.options.preprocessing.to_dict(),
               "tools": tool_versions("oakpipe", "onnx"),
               "code": code_hash("oakpipe.stages.device_graph", runner="device")}
        model_onnx = self.manifest.artifact("onnx", ".onnx")

        def body(paths: dict[str, Path]) -> dict:
            from oakpipe.stages.device_graph import build_device_graph

            return build_device_graph(model_onnx, self.options.preprocessing, paths[f"{name}_device.onnx"])

        return self._run("device", key, [f"{name}_device.onnx"], body)

    def device_from_ir(self, source: ModelSource) -> dict:
        name = self.manifest.data["model"]["name"]
        key = {"source": source.fingerprint(), "input_shape": self.options.input_shape,
               "preprocessing": self.options.preprocessing.to_dict(), "tools": tool_versions("oakpipe", "openvino"),
               "code": code_hash("oakpipe.stages.ir_import", runner="device_from_ir")}
        names = [f"{name}_device.xml", f"{name}_device.bin"]

        def body(paths: dict[str, Path]) -> dict:
            from oakpipe.stages.ir_import import import_ir

            assert source.path is not None
            return import_ir(source.path, self.options, paths[names[0]], paths[names[1]])

        return self._run("device", key, names, body)

    def device_graph(self) -> Path:
        """The device ONNX, or the user's IR when the chain started at one."""
        for name in self.manifest.stages["device"]["artifacts"]:
            if name.endswith((".onnx", ".xml")):
                return self.manifest.folder / name
        raise KeyError("device graph")

    def ir(self) -> dict:
        name = self.manifest.data["model"]["name"]
        key = {"device": self._sha("device"), "tools": tool_versions("oakpipe", "openvino"),
               "code": code_hash("oakpipe.stages.ir", runner="ir")}
        device_onnx = self.device_graph()

        def body(paths: dict[str, Path]) -> dict:
            from oakpipe.stages.ir import build_ir

            xml = paths[f"{name}.xml"]
            try:  # OpenVINO writes the .bin beside the .xml: move it to its own temporary name
                info = build_ir(device_onnx, xml)
                xml.with_suffix(".bin").replace(paths[f"{name}.bin"])
            finally:  # a failed save leaves no partial .bin behind
                xml.with_suffix(".bin").unlink(missing_ok=True)
            return info

        return self._run("ir", key, [f"{name}.xml", f"{name}.bin"], body)

    def blob_skipped(self) -> str | None:
        """Where the 2021.4 compiler cannot exist (aarch64, arm64), an offline convert stops
        after the IR and says why in one line; the manifest records it (run refuses the folder)."""
        from oakpipe.toolchain.platforms import ELSEWHERE_HINT, compiler_platform_problem

        problem = compiler_platform_problem() if self.options.compiler == "offline" else None
        if problem is None:
            self.manifest.data.pop("blob_skipped", None)
            return None
        for stage in ("blob", "archive"):  # a blob of an earlier convert no longer matches this graph
            self.manifest.stages.pop(stage, None)
        self.manifest.data["blob_skipped"] = problem
        self.progress.say(f"  {'blob':<10} skipped: {problem} -> {ELSEWHERE_HINT}")
        return problem

    def blob(self) -> dict:
        from oakpipe.stages.blob import blob_file_name

        name = self.manifest.data["model"]["name"]
        blob_name = blob_file_name(name, self.options.shaves)
        key = {"device": self._sha("device"), "shaves": self.options.shaves, "compiler": OPENVINO_VERSION,
               "tools": tool_versions("oakpipe", "depthai"),
               "code": code_hash("oakpipe.stages.blob", "oakpipe.blobfile", "oakpipe.verify.preflight",
                                 runner=("blob", "preflight"))}
        device_onnx = self.device_graph()
        if self.options.compiler != "offline":  # keyed only then: offline exports keep their cache
            from oakpipe.compilers.blobconverter_client import server_url

            key["compiled_by"] = {"compiler": self.options.compiler, "server": server_url()}

        def body(paths: dict[str, Path]) -> dict:
            from oakpipe.stages.blob import build_blob

            offline = self.options.compiler == "offline"  # the preflight needs the offline compiler
            report = self.preflight(device_onnx) if offline else None
            info = build_blob(device_onnx, paths[blob_name], self.options.shaves, self.options.compiler,
                              timeout=self.options.compile_timeout)
            preflight = report.to_dict() if report else None
            if preflight and preflight.get("model"):  # its name, not this machine's path
                preflight["model"] = Path(preflight["model"]).name
            return {**info, "preflight": preflight}

        return self._run("blob", key, [blob_name], body)

    def preflight(self, device_graph: Path):
        """Ask the compiler about every op before compiling the whole model (ONNX graphs only)."""
        if device_graph.suffix != ".onnx":
            return None
        from oakpipe.verify.preflight import preflight, raise_if_rejected

        report = preflight(device_graph, shaves=self.options.shaves, timeout=self.options.compile_timeout)
        quiet = report.ok and not report.warnings and not report.inconclusive
        for line in [report.summary()] if quiet else report.lines():
            self.progress.say("    " + line)
        raise_if_rejected(report)
        return report

    def archive(self) -> dict:
        name = self.manifest.data["model"]["name"]
        task = self.manifest.stages.get("onnx", {}).get("info", {}).get("task")  # set by attach_task
        key = {"blob": self._sha("blob"), "name": name, "tools": tool_versions("oakpipe"),
               "code": code_hash("oakpipe.stages.archive", "oakpipe.blobfile", "oakpipe.tasks.heads", runner="archive"),
               "task": task}
        blob_path = self.manifest.artifact("blob", ".blob")

        def body(paths: dict[str, Path]) -> dict:
            from oakpipe.blobfile import read_blob
            from oakpipe.stages.archive import build_archive

            return build_archive(name, blob_path, read_blob(blob_path), paths[f"{name}.tar.xz"], task)

        return self._run("archive", key, [f"{name}.tar.xz"], body)

    def verify(self, source: ModelSource) -> dict:
        from oakpipe.verify import REPORT_FILES

        options = self.options
        key = {
            "artifacts": {s: self.manifest.stages[s]["artifacts"] for s in ("onnx", "device", "ir")},
            "source": source.fingerprint(), "extra": extra_inputs(options), "tolerance": options.tolerance,
            "image": sha256_file(options.verify_image or BUILTIN_PHOTO),
            "tools": tool_versions("oakpipe", "torch", "onnxruntime", "openvino"),
            "code": code_hash("oakpipe.verify.api", "oakpipe.verify.core", "oakpipe.verify.report", runner="verify"),
        }
        artifacts = {s: self.manifest.artifact(s, ".xml" if s == "ir" else ".onnx") for s in ("onnx", "device", "ir")}

        def body(paths: dict[str, Path]) -> dict:
            from oakpipe.verify.api import verify_artifacts
            from oakpipe.verify.core import parse_tolerances
            from oakpipe.verify.report import table_lines, write_reports

            report = verify_artifacts(source.name, artifacts, self.manifest.data,
                                      self.module(source), options.verify_image, parse_tolerances(options.tolerance))
            report.preflight = self.manifest.stages.get("blob", {}).get("info", {}).get("preflight")
            write_reports(report, paths)
            lines = table_lines(report)
            failed = [s.stage for s in report.stages if not s.passed]
            summary = "verification passed" if report.passed else (
                f"stage {report.first_failure} fails; first layer: {report.blame}" if failed
                else f"{len(report.fp16_overflows)} tensor(s) overflow FP16 (above 65504)"
                + (f"; {report.blame}" if report.blame else ""))  # e.g. the untrained-BatchNorm note
            return {"passed": report.passed, "summary": summary, "table": lines}

        info = self._run("verify", key, list(REPORT_FILES), body, invalidates_export=False)
        for line in info["table"]:
            self.progress.say("    " + line)
        return info


__all__ = ["convert", "Export", "ConvertOptions"]
