"""The ``oakpipe`` command: parse arguments, call the library, turn errors into one line.

No logic lives here beyond translating options; everything is reachable from Python.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from oakpipe.errors import InternalError, OakpipeError
from oakpipe.extras import CONVERT_COMMANDS, require_convert_extra
from oakpipe.progress import Progress


def add_convert_options(parser: argparse.ArgumentParser) -> None:
    """The flags of ``oakpipe.options.CONVERT_OPTIONS``. Every default is None, so that what was
    typed (even ``--opset 12``) is told from what was not: the file, then the option's default,
    fill the rest (``api.convert_options``)."""
    from oakpipe.options import CONVERT_OPTIONS

    parser.add_argument("model", nargs="?", help="built-in name (halve), path/to/file.py:NAME or "
                        "path/to/model.onnx (optional when --config sets input_model)")
    keys = ", ".join(dict.fromkeys(option.yaml for option in CONVERT_OPTIONS))
    parser.add_argument("--config", type=Path, help=f"YAML file with modelconverter-style keys (input_model, {keys}); "
                        "options typed here win over the file")
    for option in CONVERT_OPTIONS:
        parser.add_argument(option.flag, dest=option.name, default=None, help=option.help, **option.cli)


def convert_options(args: argparse.Namespace):
    """The parsed command line (and --config) as ConvertOptions, through the Python API's path."""
    from oakpipe.api import convert_options as options_from_keywords
    from oakpipe.options import CONVERT_OPTIONS

    typed = {option.name: getattr(args, option.name) for option in CONVERT_OPTIONS}
    return options_from_keywords(args.model, config=args.config, what="MODEL", **typed)


def cmd_convert(args: argparse.Namespace) -> int:
    from oakpipe.convert import convert

    progress = Progress(quiet=args.quiet)
    options = convert_options(args)
    progress.say(f"oakpipe convert {options.model}")
    export = convert(options, progress)
    print_export(export)
    return 0


def print_export(export) -> None:
    print(f"export folder: {export.folder}")
    record = export.record
    labels = {"onnx": "onnx", "device": "device graph", "ir": "ir", "blob": "blob", "archive": "nn archive"}
    for stage, label in labels.items():
        for name in record.artifacts(stage):
            if not name.endswith(".bin"):
                print(f"  {label:<12} {export.folder / name}")
    print(f"  {'manifest':<12} {export.folder / 'manifest.json'}")
    from oakpipe.live.export_check import verification_warning

    unverified = verification_warning(export.folder, record)
    if unverified:  # --no-verify, or a verify that never finished
        print(f"note: {unverified}")
    blob = record.blob
    if blob is None:  # skipped: no MyriadX compiler on this platform
        print(f"  {'blob':<12} skipped: {record.blob_skipped}")
        return
    for port in blob.inputs:
        print(f"depthai reads: input {port.name} {port.dims} {port.data_type}, {blob.version}, {blob.shaves} shaves")
    for port in blob.outputs:
        print(f"depthai reads: output {port.name} {port.dims} {port.data_type}")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=["auto", "device", "host"], default="auto",
                        help="device: the attached OAK; host: emulate it on the CPU; auto: the OAK if attached")
    parser.add_argument("--source", default="sample", help="host frames: sample (built-in scene), a camera INDEX, "
                        "a VIDEO, an IMAGE or a DIR of images (default sample)")
    parser.add_argument("--frames", type=int, help="stop after N frames (default: the source's end; "
                        "100 for an endless source with no window)")
    parser.add_argument("--display", choices=["auto", "window", "web", "none"], default="auto",
                        help="window needs a display and opencv-python; web serves the view to a browser "
                        "(default auto)")
    parser.add_argument("--port", type=int, help="--display web: port to serve on (default 8080; 0 = any free one)")
    parser.add_argument("--host", help="--display web: address to serve on (default 127.0.0.1, this machine only)")
    parser.add_argument("--record", type=Path, help="write the side-by-side view to OUT.mp4")
    parser.add_argument("--save-frames", type=Path, help="write each side-by-side frame as a PNG into DIR")
    parser.add_argument("--fps", type=float, help="camera / source frame rate (default: the source's)")
    parser.add_argument("--strip", type=Path, help="write input | output for 4 frames to OUT.png")
    parser.add_argument("--device", help="the OAK to run on: its MxId, USB port name or IP (see oakpipe doctor)")
    parser.add_argument("--nn-queue", type=int, default=1,
                        help="frames the OAK's network input queue holds (default 1, the lowest latency)")
    parser.add_argument("--results", type=Path, help="detectors/classifiers: write each frame's decoded boxes "
                        "or top-5 labels to OUT.jsonl (one JSON line per frame)")
    parser.add_argument("--conf", type=float, help="detectors: confidence threshold (default: the archive's, 0.25)")


def run_options(args: argparse.Namespace):
    from oakpipe.live.options import RunOptions

    return RunOptions(backend=args.backend, source=args.source, frames=args.frames, display=args.display,
                      record=args.record, save_frames=args.save_frames, fps=args.fps, strip=args.strip,
                      port=args.port, host=args.host, device=args.device, nn_queue=args.nn_queue,
                      results=args.results, conf=args.conf)


def run_and_report(export, options, progress: Progress) -> int:
    from oakpipe.live import run_export
    from oakpipe.live.signals import exit_code

    summary = run_export(export, options, progress)  # every file is complete (or an error) by now
    lines = [f"oakpipe run: {summary.one_line()}"]
    for label, path in (("recorded", options.record), ("frames in", options.save_frames), ("strip", options.strip),
                        ("results", options.results)):
        if path is not None and summary.frames and Path(path).exists():
            lines.append(f"  {label:<10} {path}")
    try:
        print("\n".join(lines), flush=True)
    except OSError:  # SIGHUP: the terminal is gone; the files are what matters
        pass
    return exit_code(summary.signum) if summary.signum else 0


def cmd_run(args: argparse.Namespace) -> int:
    progress = Progress(quiet=args.quiet)
    options = run_options(args)  # checks --record & co before any work
    progress.say(f"oakpipe run {args.export_dir}")
    return run_and_report(args.export_dir, options, progress)


def cmd_deploy(args: argparse.Namespace) -> int:
    from oakpipe.convert import convert

    progress = Progress(quiet=args.quiet)
    run = run_options(args)
    options = convert_options(args)
    progress.say(f"oakpipe deploy {options.model}")
    export = convert(options, progress)
    print_export(export)
    return run_and_report(export.folder, run, progress)


def cmd_verify(args: argparse.Namespace) -> int:
    """verify = convert (every artifact cached) with the verification stage forced on."""
    from dataclasses import replace

    from oakpipe.convert import convert, options_from_manifest

    progress = Progress(quiet=args.quiet)
    from oakpipe.models.source import names_a_model

    target = Path(args.model) if args.model else None  # None: --config names the model
    if target is not None and (target.is_dir() or not names_a_model(args.model)):  # a folder, maybe missing
        options = options_from_manifest(target, verify_image=args.image, tolerance=args.tolerance)
    else:
        options = replace(convert_options(args), verify=True)
    progress.say(f"oakpipe verify {options.model}")
    export = convert(options, progress)  # prints the table, raises VerificationError on a failure
    print(f"verified: {export.folder / 'verify.md'} (and verify.json, verify_ranges.png)")
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from oakpipe.estimate.command import estimate_target, report_lines

    target = Path(args.model) if args.model else None
    from oakpipe.options import OPTIONS_BY_NAME

    shaves = OPTIONS_BY_NAME["shaves"].default if args.shaves is None else args.shaves
    what, estimate = estimate_target(target, lambda: convert_options(args), shaves=shaves, threads=args.threads)
    print("\n".join(report_lines(what, estimate)))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from oakpipe.bench.suite import run_bench, write_results
    from oakpipe.bench.tables import markdown

    results = run_bench(args.quick, Progress(quiet=args.quiet))
    print(markdown(results))
    json_path, md_path = write_results(results, args.out)
    print(f"results: {json_path}, {md_path}")
    return 0


def cmd_toolchain(args: argparse.Namespace) -> int:
    from oakpipe import toolchain

    if args.action == "install":
        from oakpipe.toolchain.install import install

        install(say=lambda line: print(f"toolchain: {line}", flush=True), force=args.force,
                with_model_optimizer=args.with_model_optimizer)
        return 0
    current = toolchain.status()
    print("\n".join(current.lines()))
    return 0 if current.installed else 1


def cmd_doctor(args: argparse.Namespace) -> int:
    from oakpipe.doctor import run_checks, table_lines

    rows = run_checks(compile_probe=not args.no_compile)
    print("\n".join(table_lines(rows)))
    return 1 if any(row.status == "fail" for row in rows) else 0


def build_parser() -> argparse.ArgumentParser:
    from oakpipe import __version__

    parser = argparse.ArgumentParser(prog="oakpipe", description="A PyTorch model onto an OAK camera, offline.")
    parser.add_argument("--version", action="version", version=f"oakpipe {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    sub = parser.add_subparsers(dest="command", required=True)

    convert = sub.add_parser("convert", help="PyTorch/ONNX model -> ONNX, IR, MyriadX blob, NN Archive")
    add_convert_options(convert)
    convert.set_defaults(func=cmd_convert)

    run = sub.add_parser("run", help="camera -> network -> screen, on an OAK or emulated on the host")
    run.add_argument("export_dir", type=Path, metavar="EXPORT_DIR",
                     help="an export folder (oakpipe convert) or an NN Archive (.tar.xz, from any tool)")
    add_run_options(run)
    run.set_defaults(func=cmd_run)

    deploy = sub.add_parser("deploy", help="convert (cached) then run")
    add_convert_options(deploy)
    add_run_options(deploy)
    deploy.set_defaults(func=cmd_deploy)

    verify = sub.add_parser("verify", help="prove every stage computes what the PyTorch model computes")
    add_convert_options(verify)
    verify.set_defaults(func=cmd_verify)

    estimate = sub.add_parser("estimate", help="RVC2 frame rate and latency before the camera, and where the time goes")
    add_convert_options(estimate)
    estimate.add_argument("--threads", type=int, default=2, help="inference threads (default 2, as depthai)")
    estimate.set_defaults(func=cmd_estimate)

    bench = sub.add_parser("bench", help="measure conversion and host inference against references")
    bench.add_argument("--quick", action="store_true", help="fewer and shorter runs (under 3 minutes)")
    bench.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="folder for the JSON and Markdown")
    bench.set_defaults(func=cmd_bench)

    tool = sub.add_parser("toolchain", help="the private OpenVINO 2021.4 MyriadX compiler")
    tool.add_argument("action", choices=["status", "install"])
    tool.add_argument("--force", action="store_true", help="reinstall even if it works")
    tool.add_argument("--with-model-optimizer", action="store_true",
                      help="also install the 2021.4 Model Optimizer (only the benchmark's 2021 reference uses it)")
    tool.set_defaults(func=cmd_toolchain)

    doctor = sub.add_parser("doctor", help="check this machine: versions, compiler, OAK devices, display")
    doctor.add_argument("--no-compile", action="store_true", help="skip the test compile of a 1-op model")
    doctor.set_defaults(func=cmd_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        argv.remove("--debug")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(format="oakpipe: %(levelname)s: %(message)s", level=logging.WARNING)
    try:
        if args.command in CONVERT_COMMANDS:  # a light (run-only) install: one line on what to add
            require_convert_extra(args.command)
        return args.func(args)
    except OakpipeError as exc:
        if debug:
            raise
        print(f"oakpipe: {exc.label}: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP during run (oakpipe.live.signals)
        from oakpipe.live.signals import exit_code, signal_name, signal_of

        try:
            print(f"oakpipe: interrupted ({signal_name(signal_of(exc))})", file=sys.stderr)
        except OSError:  # the terminal is gone (SIGHUP)
            pass
        return exit_code(signal_of(exc))
    except Exception as exc:  # a bug: one line, the traceback on request
        if debug:
            raise
        error = _users_os_error(exc) or InternalError(f"{type(exc).__name__}: {exc}",
                                                      "rerun with --debug and report the traceback")
        print(f"oakpipe: {error.label}: {error.one_line()}", file=sys.stderr)
        return error.exit_code


def _users_os_error(exc: Exception) -> OakpipeError | None:
    """A full disk, a read-only mount or a denied path anywhere is the user's to fix (exit 2)."""
    from oakpipe.userpaths import user_error_for_os

    return user_error_for_os(exc) if isinstance(exc, OSError) else None
