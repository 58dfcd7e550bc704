"""``convert``: a model to ONNX, device graph, FP16 IR, MyriadX blob and NN Archive.

Each stage is a small module under ``oakpipe.stages``; this module only chains them
through the manifest's cache, so an unchanged second convert recomputes nothing (and
imports neither torch nor OpenVINO).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from oakpipe.manifest import Manifest, export_lock, run_stage, sha256_file, sha256_json
from oakpipe.models.source import ModelSource, parse_model_spec
from oakpipe.options import ConvertOptions
from oakpipe.progress import Progress
from oakpipe.toolchain import OPENVINO_VERSION
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
    def name(self) -> str:
        return self.manifest["model"]["name"]

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
        return tuple(self.manifest["options"]["input_shape"])  # type: ignore[return-value]

    @classmethod
    def open(cls, folder: Path) -> "Export":
        from oakpipe.errors import UserError

        manifest = Manifest.load(folder)
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
    files = {"weights": options.weights, "style": options.style}
    data = {k: sha256_file(Path(v)) for k, v in files.items() if v is not None}
    if options.weights_dir is not None:
        data["weights_dir"] = {p.name: sha256_file(p) for p in sorted(Path(options.weights_dir).glob("*.pth"))}
    return data


def convert(options: ConvertOptions, progress: Progress | None = None, source: ModelSource | None = None) -> Export:
    """Run every stage (cached); ``source`` overrides ``options.model`` (an in-memory module)."""
    progress = progress or Progress(quiet=True)
    source = source or parse_model_spec(options.model)
    folder = Path(options.out) if options.out else default_folder(source.name)
    started = time.perf_counter()
    with export_lock(folder):
        manifest = Manifest.load(folder)
        manifest.data.update(describe_run(source, options))
        stages = StageRunner(manifest, options, progress)
        if source.kind == "ir":  # a 2021.4 IR is already a device graph: nothing to export
            manifest.stages.pop("onnx", None)
            device_info = model_info = stages.device_from_ir(source)
        else:
            model_info = stages.onnx(source)
            device_info = stages.device()
        stages.ir()
        stages.blob()
        stages.archive()
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


def describe_run(source: ModelSource, options: ConvertOptions) -> dict:
    return {
        "model": {"name": source.name, "source": source.resolved_spec, "kind": source.kind},
        "options": {
            "input_shape": list(options.input_shape), "opset": options.opset, "shaves": options.shaves,
            "weights": _absolute(options.weights), "style": _absolute(options.style), "alpha": options.alpha,
            "weights_dir": _absolute(options.weights_dir), "compiler": options.compiler,
        },
        "preprocessing": {**options.preprocessing.to_dict(), "camera_frame": "BGR888p (U8, planar)",
                          "model_encoding": options.preprocessing.model_encoding},
        "versions": {**tool_versions(), "compiler": f"openvino {OPENVINO_VERSION} (MYRIAD)"},
    }


PACKAGE = Path(__file__).parent
VERIFY_CODE = ("verify/core.py", "verify/runners.py", "verify/ranges.py", "verify/metrics.py", "verify/fp16_onnx.py",
               "verify/samples.py", "verify/report.py", "data/astronaut.jpg")


def attach_task(info: dict, module) -> dict:
    """Keep what a task model's outputs mean (oakpipe.tasks) in the ONNX stage's record."""
    task = getattr(module, "oakpipe_task", None)
    return {**info, "task": task.to_dict()} if task is not None else info


def code_hash(*relative: str) -> str:
    """A stage's own code is one of its tools: a change to it must invalidate the cache."""
    return sha256_json({name: sha256_file(PACKAGE / name) for name in relative})


def _absolute(path: Path | None) -> str | None:
    return str(Path(path).resolve()) if path is not None else None


def options_from_manifest(folder: Path, **overrides) -> ConvertOptions:
    """The options an export folder was made with (to re-verify or re-run it)."""
    from oakpipe.errors import UserError
    from oakpipe.preprocessing import Preprocessing

    manifest = Manifest.load(folder)
    if "model" not in manifest.data:
        raise UserError(f"{folder} is not an oakpipe export folder (no manifest.json)", "run oakpipe convert first")
    data, opts = manifest.data, manifest.data["options"]
    path_or_none = lambda value: Path(value) if value else None  # noqa: E731
    values = dict(
        model=data["model"]["source"], input_shape=tuple(opts["input_shape"]), opset=opts["opset"],
        preprocessing=Preprocessing.from_dict(data["preprocessing"]), shaves=opts["shaves"],
        weights=path_or_none(opts.get("weights")), style=path_or_none(opts.get("style")),
        alpha=opts.get("alpha", 1.0), weights_dir=path_or_none(opts.get("weights_dir")), out=folder,
        compiler=opts.get("compiler", "offline"),  # re-verifying must not switch compilers
    )
    values.update(overrides)
    return ConvertOptions(**values)


class StageRunner:
    """The five stages, each keyed by what decides its output."""

    def __init__(self, manifest: Manifest, options: ConvertOptions, progress: Progress) -> None:
        self.manifest = manifest
        self.options = options
        self.progress = progress
        self.all_cached = True
        self._module = None

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
            "code": code_hash("stages/onnx_export.py", "stages/opset_downgrade.py", "models/loader.py",
                              "tasks/ultralytics_model.py"),
        }

        def body(paths: dict[str, Path]) -> dict:
            from oakpipe.stages import onnx_export

            path = paths[f"{source.name}.onnx"]
            if source.kind == "onnx":
                assert source.path is not None
                return onnx_export.import_onnx(source.path, options, path)
            info = onnx_export.export_torch(self.module(source), options, path)
            return attach_task(info, self.module(source))

        return self._run("onnx", key, [f"{source.name}.onnx"], body)

    def device(self) -> dict:
        name = self.manifest.data["model"]["name"]
        key = {"onnx": self._sha("onnx"), "preprocessing": self.options.preprocessing.to_dict(),
               "tools": tool_versions("oakpipe", "onnx"),
               "code": code_hash("stages/device_graph.py", "stages/rewrites.py")}
        model_onnx = self.manifest.artifact("onnx", ".onnx")

        def body(paths: dict[str, Path]) -> dict:
            from oakpipe.stages.device_graph import build_device_graph

            return build_device_graph(model_onnx, self.options.preprocessing, paths[f"{name}_device.onnx"])

        return self._run("device", key, [f"{name}_device.onnx"], body)

    def device_from_ir(self, source: ModelSource) -> dict:
        name = self.manifest.data["model"]["name"]
        key = {"source": source.fingerprint(), "input_shape": self.options.input_shape,
               "preprocessing": self.options.preprocessing.to_dict(), "tools": tool_versions("oakpipe", "openvino"),
               "code": code_hash("stages/ir_import.py")}
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
               "code": code_hash("stages/ir.py")}
        device_onnx = self.device_graph()

        def body(paths: dict[str, Path]) -> dict:
            from oakpipe.stages.ir import build_ir

            xml = paths[f"{name}.xml"]
            info = build_ir(device_onnx, xml)
            xml.with_suffix(".bin").replace(paths[f"{name}.bin"])
            return info

        return self._run("ir", key, [f"{name}.xml", f"{name}.bin"], body)

    def blob(self) -> dict:
        from oakpipe.stages.blob import blob_file_name

        name = self.manifest.data["model"]["name"]
        blob_name = blob_file_name(name, self.options.shaves)
        key = {"device": self._sha("device"), "shaves": self.options.shaves, "compiler": OPENVINO_VERSION,
               "tools": tool_versions("oakpipe", "depthai"),
               "code": code_hash("stages/blob.py", "blobfile.py", "toolchain/compile_worker.py")}
        device_onnx = self.device_graph()
        if self.options.compiler != "offline":  # keyed only then: offline exports keep their cache
            from oakpipe.compilers.blobconverter_client import server_url

            key["compiled_by"] = {"compiler": self.options.compiler, "server": server_url()}

        def body(paths: dict[str, Path]) -> dict:
            from oakpipe.stages.blob import build_blob

            offline = self.options.compiler == "offline"  # the preflight needs the offline compiler
            report = self.preflight(device_onnx) if offline else None
            info = build_blob(device_onnx, paths[blob_name], self.options.shaves, self.options.compiler)
            return {**info, "preflight": report.to_dict() if report else None}

        return self._run("blob", key, [blob_name], body)

    def preflight(self, device_graph: Path):
        """Ask the compiler about every op before compiling the whole model (ONNX graphs only)."""
        if device_graph.suffix != ".onnx":
            return None
        from oakpipe.verify.preflight import preflight, raise_if_rejected

        report = preflight(device_graph, shaves=self.options.shaves)
        quiet = report.ok and not report.warnings and not report.inconclusive
        for line in [report.summary()] if quiet else report.lines():
            self.progress.say("    " + line)
        raise_if_rejected(report)
        return report

    def archive(self) -> dict:
        name = self.manifest.data["model"]["name"]
        task = self.manifest.stages.get("onnx", {}).get("info", {}).get("task")  # set by attach_task
        key = {"blob": self._sha("blob"), "name": name, "tools": tool_versions("oakpipe"),
               "code": code_hash("stages/archive.py", "tasks/heads.py"), "task": task}
        blob_path = self.manifest.artifact("blob", ".blob")

        def body(paths: dict[str, Path]) -> dict:
            from oakpipe.blobfile import read_blob
            from oakpipe.stages.archive import build_archive

            return build_archive(name, blob_path, read_blob(blob_path), paths[f"{name}.tar.xz"], task)

        return self._run("archive", key, [f"{name}.tar.xz"], body)

    def verify(self, source: ModelSource) -> dict:
        from oakpipe.verify.report import REPORT_FILES

        options = self.options
        key = {
            "artifacts": {s: self.manifest.stages[s]["artifacts"] for s in ("onnx", "device", "ir")},
            "source": source.fingerprint(), "extra": extra_inputs(options), "tolerance": options.tolerance,
            "image": sha256_file(options.verify_image) if options.verify_image else None,
            "tools": tool_versions("oakpipe", "torch", "onnxruntime", "openvino"),
            "code": code_hash(*VERIFY_CODE),
        }
        artifacts = {s: self.manifest.artifact(s, ".xml" if s == "ir" else ".onnx") for s in ("onnx", "device", "ir")}

        def body(paths: dict[str, Path]) -> dict:
            from oakpipe.verify.api import verify_artifacts
            from oakpipe.verify.core import parse_tolerances
            from oakpipe.verify.report import table_lines, write_reports

            report = verify_artifacts(source.name, artifacts, self.manifest.data,
                                      self.module(source), options.verify_image, parse_tolerances(options.tolerance))
            report.preflight = self.manifest.stages["blob"]["info"].get("preflight")
            write_reports(report, paths)
            lines = table_lines(report)
            failed = [s.stage for s in report.stages if not s.passed]
            summary = "verification passed" if report.passed else (
                f"stage {report.first_failure} fails; first layer: {report.blame}" if failed
                else f"{len(report.fp16_flags)} tensor(s) leave the FP16 range"
                + (f"; {report.blame}" if report.blame else ""))  # e.g. the untrained-BatchNorm note
            return {"passed": report.passed, "summary": summary, "table": lines}

        info = self._run("verify", key, list(REPORT_FILES), body, invalidates_export=False)
        for line in info["table"]:
            self.progress.say("    " + line)
        return info


__all__ = ["convert", "Export", "ConvertOptions"]
