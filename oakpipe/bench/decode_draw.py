"""Decode and draw against inference, per frame, for YOLO n-size models at 416x416.

Issue 13's goal: on the host, decoding and drawing stay under 10% of inference for YOLO
n-size models at 416x416. Each row is one ``oakpipe run --backend host --display none``
(inference, decode and draw of the same frames, in one run, as ``run`` reports them), and
the figure is the per-frame ratio (decode + draw) / inference, its median and 90th
percentile: a shared machine's speed drifts, a ratio of two costs measured on the same frame
drifts far less. The first ``WARMUP`` frames (OpenVINO's first requests) are left out.

No trained weights can be had here: the models are Ultralytics' YAMLs with random weights
and BatchNorm statistics recalibrated on crops of oakpipe's photograph. Their scores are not
a trained model's, so each row says how many boxes it decoded. Three settings:

* ``photo 0.25``: pans over the photograph at the default threshold (few boxes, a few
  dozen at most with trained weights on such a scene);
* ``photo 0.001``: the same frames at a low threshold: tens of boxes;
* ``scene 0.25``: the built-in moving scene, on which these random weights score high
  everywhere: hundreds of boxes, up to the 300-box cap (a worst case, not a typical frame).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

SIZE = 416
MODELS = ("yolo11n", "yolov8n", "yolo11n-seg", "yolov8n-seg", "yolo11n-pose", "yolov8n-pose")
SETTINGS = (("photo", 0.25), ("photo", 0.001), ("scene", 0.25))
WARMUP = 5


def photo_crops(folder: Path, count: int) -> Path:
    """``count`` frames panning and zooming over oakpipe's photograph, as a folder of PNGs."""
    import cv2

    from oakpipe.verify import BUILTIN_PHOTO
    from oakpipe.verify.samples import read_colour_image

    image = read_colour_image(BUILTIN_PHOTO, "built-in photo")
    height, width = image.shape[:2]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        phase = i / max(1, count - 1)
        side = int(min(height, width) * (1.0 - 0.4 * np.sin(np.pi * phase)))  # zoom in and out again
        x, y = int((width - side) * phase), int((height - side) * (0.5 + 0.5 * np.sin(3 * np.pi * phase)))
        crop = image[y : y + side, x : x + side]
        cv2.imwrite(str(folder / f"{i:04d}.png"), crop if i % 2 == 0 else crop[:, ::-1])
    return folder


def calibration_batch(size: int):
    """Photo-like images for BatchNorm statistics: crops of the photograph and their mirrors (RGB, 0..1)."""
    import cv2
    import torch

    from oakpipe.verify import BUILTIN_PHOTO
    from oakpipe.verify.samples import read_colour_image

    image = cv2.cvtColor(read_colour_image(BUILTIN_PHOTO, "built-in photo"), cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    crops = [image, image[: h // 2], image[h // 2 :], image[:, : w // 2], image[:, w // 2 :], image[h // 4 : 3 * h // 4]]
    resized = [cv2.resize(np.ascontiguousarray(c), (size, size), interpolation=cv2.INTER_AREA) for c in crops]
    resized += [np.ascontiguousarray(r[:, ::-1]) for r in resized]
    return torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2).float() / 255.0


def checkpoint(yaml_name: str, path: Path, seed: int = 0) -> Path:
    """A best.pt-style file of ``yaml_name`` with random weights and recalibrated BatchNorm."""
    import torch
    from ultralytics import YOLO

    from oakpipe.bench.models import recalibrate_batchnorm

    torch.manual_seed(seed)
    yolo = YOLO(yaml_name)
    assert isinstance(yolo.model, torch.nn.Module)
    recalibrate_batchnorm(yolo.model, calibration_batch(SIZE))
    path.parent.mkdir(parents=True, exist_ok=True)
    yolo.save(str(path))
    return path


def export_of(model: str, workdir: Path):
    from oakpipe import ConvertOptions, convert

    ckpt = checkpoint(f"{model}.yaml", workdir / model / "best.pt")
    return convert(ConvertOptions(model=str(ckpt), input_shape=(1, 3, SIZE, SIZE), out=workdir / model / "export",
                                  verify=False))


def measure(export, source: str, conf: float, frames: int) -> dict:
    """One host run: the per-frame ratio, the stages' medians, boxes and ``--results`` bytes per frame."""
    from oakpipe.live.options import RunOptions
    from oakpipe.live.pipeline import run_export
    from oakpipe.progress import Progress
    from oakpipe.tasks.decode import TaskDecoder
    from oakpipe.tasks.results import result_line

    kept: list = []
    options = RunOptions(backend="host", source=source, frames=frames, display="none", conf=conf)
    summary = run_export(export.folder, options, Progress(quiet=True), on_frame=lambda item, _: kept.append(item.outputs))
    steady = {s: v[WARMUP:] for s, v in summary.stage_ms.items()}
    ratios = type(summary)(summary.backend, summary.source, summary.frames, summary.seconds, summary.stopped_by,
                           steady, summary.latency_ms[WARMUP:]).decode_draw_ratios()
    decoder = TaskDecoder.for_archive(export.archive, conf=conf)  # again, untimed: what those frames held
    assert decoder is not None
    decoded = [decoder.decode(outputs) for outputs in kept[WARMUP:]]
    boxes = [len(d.detections) for d in decoded]
    line_bytes = [len(result_line(i, 0.0, d).encode()) for i, d in enumerate(decoded)]
    median = {s: float(np.nanmedian(v)) if len(v) and not np.isnan(v).all() else float("nan")
              for s, v in ((s, np.asarray(v, dtype=np.float64)) for s, v in steady.items())}
    return {"frames": len(ratios), "ratio_median": float(np.median(ratios)), "ratio_p90": float(np.percentile(ratios, 90)),
            "ms": {s: median[s] for s in ("inference", "decode", "draw")},
            "boxes": [int(np.median(boxes)), int(max(boxes))], "line_bytes": int(np.median(line_bytes))}


def decode_draw_table(workdir: Path, frames: int, progress=None, models=MODELS) -> dict:
    """Every model in every setting; a row says why the whole table is absent without Ultralytics."""
    try:
        import ultralytics  # noqa: F401
    except ImportError as exc:
        return {"skipped": f"Ultralytics is not installed ({exc})"}
    photos = str(photo_crops(workdir / "photo-frames", frames))
    rows = []
    for model in models:
        if progress is not None:
            progress.say(f"  {model} at {SIZE}x{SIZE}")
        export = export_of(model, workdir)
        for source, conf in SETTINGS:
            row = measure(export, photos if source == "photo" else "sample", conf, frames)
            rows.append({"model": model, "source": source, "conf": conf, **row})
    return {"size": SIZE, "warmup": WARMUP, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    """``python -m oakpipe.bench.decode_draw``: this table alone, written beside the bench results."""
    import argparse
    import datetime
    import socket
    import tempfile

    from oakpipe.bench.machine import describe_machine
    from oakpipe.bench.tables import decode_draw_section
    from oakpipe.manifest import write_atomic
    from oakpipe.progress import Progress

    parser = argparse.ArgumentParser(prog="python -m oakpipe.bench.decode_draw")
    parser.add_argument("--frames", type=int, default=80, help="frames per run (the first 5 are left out)")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="oakpipe-decode-draw-") as tmp:
        table = decode_draw_table(Path(tmp), args.frames, Progress(), tuple(args.models))
    results: dict = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": describe_machine(),
               "decode_draw": table, "seconds": time.perf_counter() - started}
    text = "\n".join(decode_draw_section(results))
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{results['date'][:10]}-{socket.gethostname()}-decode-draw"
    write_atomic(args.out / f"{stem}.json", (json.dumps(results, indent=1) + "\n").encode())
    write_atomic(args.out / f"{stem}.md", (text + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
