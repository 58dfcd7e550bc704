"""``oakpipe bench``: conversion and host-inference figures, side by side in one run,
against the references (the 2021 manual chain, raw OpenVINO) and the machine's FP32 peak.

Every figure is a median of several runs with its spread; ratios are taken between
numbers measured in the same run, since a shared machine's absolute speed drifts.
"""

from __future__ import annotations

import datetime
import json
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from oakpipe.bench import conversion, inference
from oakpipe.bench.decode_draw import decode_draw_table
from oakpipe.bench.machine import describe_machine, peak_fp32_gflops
from oakpipe.bench.rvc2 import rvc2_vs_published
from oakpipe.convert import convert
from oakpipe.manifest import write_atomic
from oakpipe.progress import Progress


@dataclass(frozen=True)
class BenchPlan:
    seconds: float  # per throughput measurement
    repeats: int
    pipeline_frames: int
    decode_draw_frames: int = 80
    models: tuple[str, ...] = ("halve", "stylizer", "adain")
    sizes: tuple[int, ...] = (128, 256, 512)

    @classmethod
    def choose(cls, quick: bool) -> "BenchPlan":
        if quick:
            return cls(seconds=1.0, repeats=2, pipeline_frames=40, decode_draw_frames=30, sizes=(128, 256))
        return cls(seconds=3.0, repeats=5, pipeline_frames=150)


def run_bench(quick: bool, progress: Progress) -> dict:
    plan = BenchPlan.choose(quick)
    results: dict = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "quick": quick,
                     "machine": describe_machine()}
    progress.say("measuring the machine's FP32 peak (numpy matmul)")
    results["peak"] = peak_fp32_gflops(repeats=plan.repeats + 1)
    progress.say("RVC2 estimate against Luxonis' published frame rates")
    results["rvc2"] = rvc2_vs_published()
    results["conversion"] = []
    for model in plan.models:
        progress.say(f"converting {model} (cold, then cached)")
        results["conversion"].append(conversion.cold_and_cached(model, 256, cached_repeats=plan.repeats))
    with tempfile.TemporaryDirectory(prefix="oakpipe-bench-") as tmp:
        workdir = Path(tmp)
        progress.say("cold converts of ResNet-50 and YOLOv8n, verify included")
        results["large_models"] = conversion.large_models(workdir)
        progress.say("host inference of the stylizer at 256x256")
        results["inference"] = inference_table(workdir, plan)
        progress.say("host pipeline against raw OpenVINO on a 1.2 GMAC CNN; halve's per-frame cost")
        results["pipeline"] = pipeline_table(workdir, plan)
        progress.say("decode + draw against inference: YOLO n-size models at 416x416")
        results["decode_draw"] = decode_draw_table(workdir / "decode-draw", plan.decode_draw_frames, progress)
        results["manual_2021"] = manual_reference(workdir)
        progress.say("scaling with input size and model size")
        results["scaling"] = scaling_table(workdir, plan, progress)
    return results


def export_for(model: str, size: int, workdir: Path):
    return convert(conversion.bench_options(model, size, workdir / f"{model}-{size}"))


def gmac_of(export) -> float:
    from oakpipe.verify.preflight import estimate

    return estimate(export.device_onnx).gmac


def inference_table(workdir: Path, plan: BenchPlan) -> dict:
    from oakpipe.models.loader import build_module
    from oakpipe.models.source import parse_model_spec

    export = export_for("stylizer", 256, workdir)
    options = conversion.bench_options("stylizer", 256, export.folder)
    module = build_module(parse_model_spec("stylizer"), options)
    rows = {
        "pytorch": inference.torch_fps(module, export.input_shape, plan.seconds, plan.repeats),
        "onnxruntime": inference.onnxruntime_fps(export, plan.seconds, plan.repeats),
        "openvino": inference.openvino_fps(export, plan.seconds, plan.repeats),
        "pipeline": inference.pipeline_fps(export, plan.pipeline_frames, plan.repeats),
    }
    return {"model": "stylizer", "size": 256, "gmac": gmac_of(export), "runtimes": rows,
            "pipeline_over_openvino": rows["pipeline"]["fps"] / rows["openvino"]["fps"]}


def pipeline_table(workdir: Path, plan: BenchPlan) -> dict:
    """``oakpipe run``'s own cost: against raw OpenVINO where inference dominates (BenchCNN),
    and split by stage where inference is almost free (halve)."""
    from oakpipe.api import convert as convert_model
    from oakpipe.bench.models import BenchCNN

    cnn = convert_model(BenchCNN(), name="benchcnn", out=workdir / "benchcnn", verify=False)
    raw = inference.openvino_fps(cnn, plan.seconds, plan.repeats)
    piped = inference.pipeline_fps(cnn, plan.pipeline_frames, plan.repeats)
    halve = inference.pipeline_fps(export_for("halve", 256, workdir), 4 * plan.pipeline_frames, 1)
    return {"model": "benchcnn", "gmac": gmac_of(cnn), "openvino": raw, "pipeline": piped,
            "pipeline_over_openvino": piped["fps"] / raw["fps"], "halve": halve}


def manual_reference(workdir: Path) -> dict | None:
    """The 2021 chain by hand (2021.4 Model Optimizer, then the compile) on the stylizer."""
    export = export_for("stylizer", 256, workdir)
    manual = conversion.manual_2021_chain(export.device_onnx, workdir / "manual")
    return None if manual is None else {"model": "stylizer", "size": 256, **manual}


def scaling_table(workdir: Path, plan: BenchPlan, progress: Progress) -> list[dict]:
    rows = []
    combos = [("stylizer", s) for s in plan.sizes] + [(m, 256) for m in plan.models if m != "stylizer"]
    for model, size in combos:
        progress.say(f"  {model} at {size}x{size}")
        cold = conversion.cold_and_cached(model, size, cached_repeats=1)
        export = export_for(model, size, workdir)
        fps = inference.openvino_fps(export, plan.seconds, max(1, plan.repeats // 2))
        rows.append({"model": model, "size": size, "cold_convert_s": cold["cold_s"], "gmac": gmac_of(export),
                     "openvino_fps": fps["fps"], "blob_bytes": cold["blob_bytes"]})
    return rows


def write_results(results: dict, folder: Path) -> tuple[Path, Path]:
    from oakpipe.bench.tables import markdown

    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{results['date'][:10]}-{socket.gethostname()}"
    json_path, md_path = folder / f"{stem}.json", folder / f"{stem}.md"
    write_atomic(json_path, (json.dumps(results, indent=1) + "\n").encode())
    write_atomic(md_path, markdown(results).encode())
    return json_path, md_path
