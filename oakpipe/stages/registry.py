"""Every convert stage, declared once (oakpipe.stages.declare); convert runs them in the
order their inputs give. A new stage is a module doing the work plus one declaration here.

The bodies import their work lazily: a cached convert reads these declarations and
imports neither torch nor OpenVINO.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oakpipe.manifest import sha256_file
from oakpipe.stages.declare import Stage
from oakpipe.verify import BUILTIN_PHOTO  # a light module: no numpy for a cached convert


def extra_inputs(options: Any) -> dict:
    """Hashes of the files besides the model source that decide the export."""
    files = {"weights": options.weights, "style": options.style, "labels": options.labels}
    data: dict[str, object] = {k: sha256_file(Path(v)) for k, v in files.items() if v is not None}
    if options.weights_dir is not None:
        data["weights_dir"] = {p.name: sha256_file(p) for p in sorted(Path(options.weights_dir).glob("*.pth"))}
    return data


def attach_task(info: dict, module, options: Any = None, onnx_path: Path | None = None) -> dict:
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


def _onnx_key(runner: Any) -> dict:
    return {"source": runner.source.fingerprint(), "extra": extra_inputs(runner.options)}


def _onnx_body(runner: Any, paths: dict[str, Path]) -> dict:
    from oakpipe.stages import onnx_export

    source, options = runner.source, runner.options
    path = paths[f"{source.name}.onnx"]
    if source.kind == "onnx":
        assert source.path is not None
        return attach_task(onnx_export.import_onnx(source.path, options, path), None, options, path)
    info = onnx_export.export_torch(runner.module(), options, path)
    return attach_task(info, runner.module(), options, path)


ONNX = Stage(
    "onnx", consumes=(), options=("input_shape", "opset", "alpha", "task"),
    code=("oakpipe.stages.onnx_export", "oakpipe.models.loader", "oakpipe.tasks.ultralytics_model",
          "oakpipe.tasks.declared"),
    tools=("oakpipe", "torch", "onnx", "onnxslim"),
    artifacts=lambda runner: [f"{runner.name}.onnx"], key=_onnx_key, body=_onnx_body,
    applies=lambda runner: runner.source.kind != "ir",  # a 2021.4 IR is already a device graph
    functions=(attach_task,),
)


def _device_body(runner: Any, paths: dict[str, Path]) -> dict:
    from oakpipe.stages.device_graph import build_device_graph

    model_onnx = runner.manifest.artifact("onnx", ".onnx")
    return build_device_graph(model_onnx, runner.options.preprocessing, paths[f"{runner.name}_device.onnx"])


DEVICE = Stage(
    "device", consumes=("onnx",), options=("preprocessing",), code=("oakpipe.stages.device_graph",),
    tools=("oakpipe", "onnx"), artifacts=lambda runner: [f"{runner.name}_device.onnx"], body=_device_body,
    applies=lambda runner: runner.source.kind != "ir",
)


def _device_from_ir_body(runner: Any, paths: dict[str, Path]) -> dict:
    from oakpipe.stages.ir_import import import_ir

    xml, bin_ = (paths[name] for name in (f"{runner.name}_device.xml", f"{runner.name}_device.bin"))
    assert runner.source.path is not None
    return import_ir(runner.source.path, runner.options, xml, bin_)


DEVICE_FROM_IR = Stage(
    "device", consumes=(), options=("input_shape", "preprocessing"), code=("oakpipe.stages.ir_import",),
    tools=("oakpipe", "openvino"), artifacts=lambda runner: [f"{runner.name}_device.xml", f"{runner.name}_device.bin"],
    key=lambda runner: {"source": runner.source.fingerprint()}, body=_device_from_ir_body,
    applies=lambda runner: runner.source.kind == "ir",
)


def _ir_body(runner: Any, paths: dict[str, Path]) -> dict:
    from oakpipe.stages.ir import build_ir

    device_graph = runner.device_graph()
    xml = paths[f"{runner.name}.xml"]
    try:  # OpenVINO writes the .bin beside the .xml: move it to its own temporary name
        info = build_ir(device_graph, xml)
        xml.with_suffix(".bin").replace(paths[f"{runner.name}.bin"])
    finally:  # a failed save leaves no partial .bin behind
        xml.with_suffix(".bin").unlink(missing_ok=True)
    return info


IR = Stage(
    "ir", consumes=("device",), options=(), code=("oakpipe.stages.ir",), tools=("oakpipe", "openvino"),
    artifacts=lambda runner: [f"{runner.name}.xml", f"{runner.name}.bin"], body=_ir_body,
)


def _blob_name(runner: Any) -> list[str]:
    from oakpipe.stages.blob import blob_file_name

    return [blob_file_name(runner.name, runner.options.shaves)]


def _blob_key(runner: Any) -> dict:
    from oakpipe.toolchain import OPENVINO_VERSION

    key: dict[str, object] = {"compiler": OPENVINO_VERSION}
    if runner.options.compiler != "offline":  # keyed only then: offline exports keep their cache
        from oakpipe.compilers.blobconverter_client import server_url

        key["compiled_by"] = {"compiler": runner.options.compiler, "server": server_url()}
    return key


def _blob_skip(runner: Any) -> tuple[str, str] | None:
    """Where the 2021.4 compiler cannot exist (aarch64, arm64), an offline convert stops
    after the IR and says why in one line (run refuses the folder)."""
    from oakpipe.toolchain.platforms import ELSEWHERE_HINT, compiler_platform_problem

    problem = compiler_platform_problem() if runner.options.compiler == "offline" else None
    return (problem, ELSEWHERE_HINT) if problem is not None else None


def _blob_body(runner: Any, paths: dict[str, Path]) -> dict:
    from oakpipe.stages.blob import build_blob

    options, device_graph = runner.options, runner.device_graph()
    offline = options.compiler == "offline"  # the preflight needs the offline compiler
    report = _preflight(runner, device_graph) if offline else None
    info = build_blob(device_graph, paths[_blob_name(runner)[0]], options.shaves, options.compiler,
                      timeout=options.compile_timeout)
    preflight = report.to_dict() if report else None
    if preflight and preflight.get("model"):  # its name, not this machine's path
        preflight["model"] = Path(preflight["model"]).name
    return {**info, "preflight": preflight}


def _preflight(runner: Any, device_graph: Path):
    """Ask the compiler about every op before compiling the whole model (ONNX graphs only)."""
    if device_graph.suffix != ".onnx":
        return None
    from oakpipe.verify.preflight import preflight, raise_if_rejected

    report = preflight(device_graph, shaves=runner.options.shaves, timeout=runner.options.compile_timeout)
    quiet = report.ok and not report.warnings and not report.inconclusive
    for line in [report.summary()] if quiet else report.lines():
        runner.progress.say("    " + line)
    raise_if_rejected(report)
    return report


BLOB = Stage(
    "blob", consumes=("device",), options=("shaves",),
    code=("oakpipe.stages.blob", "oakpipe.blobfile", "oakpipe.verify.preflight"), tools=("oakpipe", "depthai"),
    artifacts=_blob_name, key=_blob_key, body=_blob_body, skip=_blob_skip, functions=(_preflight,),
)


def _archive_task(runner: Any) -> dict | None:
    return runner.manifest.stages.get("onnx", {}).get("info", {}).get("task")  # set by attach_task


def _archive_body(runner: Any, paths: dict[str, Path]) -> dict:
    from oakpipe.blobfile import read_blob
    from oakpipe.stages.archive import build_archive

    blob_path = runner.manifest.artifact("blob", ".blob")
    name = runner.name
    return build_archive(name, blob_path, read_blob(blob_path), paths[f"{name}.tar.xz"], _archive_task(runner))


ARCHIVE = Stage(
    "archive", consumes=("blob",), options=(), code=("oakpipe.stages.archive", "oakpipe.blobfile", "oakpipe.tasks.heads"),
    tools=("oakpipe",), artifacts=lambda runner: [f"{runner.name}.tar.xz"],
    key=lambda runner: {"name": runner.name, "task": _archive_task(runner)}, body=_archive_body,
    functions=(_archive_task,),
)


def _verify_key(runner: Any) -> dict:
    options = runner.options
    return {"source": runner.source.fingerprint(), "extra": extra_inputs(options),
            "image": sha256_file(options.verify_image or BUILTIN_PHOTO)}


def _verify_body(runner: Any, paths: dict[str, Path]) -> dict:
    from oakpipe.verify.api import verify_artifacts
    from oakpipe.verify.core import parse_tolerances
    from oakpipe.verify.report import table_lines, write_reports

    options, manifest = runner.options, runner.manifest
    artifacts = {s: manifest.artifact(s, ".xml" if s == "ir" else ".onnx") for s in ("onnx", "device", "ir")}
    source = runner.source
    report = verify_artifacts(source.name, artifacts, manifest.data, runner.module(), options.verify_image,
                              parse_tolerances(options.tolerance), source.path if source.kind == "onnx" else None)
    report.preflight = manifest.stages.get("blob", {}).get("info", {}).get("preflight")
    write_reports(report, paths)
    failed = [s.stage for s in report.stages if not s.passed]
    summary = "verification passed" if report.passed else (
        f"stage {report.first_failure} fails; first layer: {report.blame}" if failed
        else f"{len(report.fp16_overflows)} tensor(s) overflow FP16 (above 65504)"
        + (f"; {report.blame}" if report.blame else ""))  # e.g. the untrained-BatchNorm note
    return {"passed": report.passed, "summary": summary, "table": table_lines(report)}


def _verify_table(runner: Any, info: dict) -> None:
    for line in info["table"]:
        runner.progress.say("    " + line)


def _verify_files(runner: Any) -> list[str]:
    from oakpipe.verify import REPORT_FILES

    return list(REPORT_FILES)


VERIFY = Stage(
    "verify", consumes=("onnx", "device", "ir"), options=("tolerance",),
    code=("oakpipe.verify.api", "oakpipe.verify.core", "oakpipe.verify.report"),
    tools=("oakpipe", "torch", "onnxruntime", "openvino"), artifacts=_verify_files, key=_verify_key, body=_verify_body,
    applies=lambda runner: runner.options.verify and runner.source.kind != "ir",  # an IR has no model to compare with
    report_only=True, done=_verify_table,
)

#: Every stage; convert orders them by what they consume (oakpipe.stages.declare.stage_order).
STAGES: tuple[Stage, ...] = (ONNX, DEVICE, DEVICE_FROM_IR, IR, BLOB, ARCHIVE, VERIFY)
