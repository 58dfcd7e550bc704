"""The benchmark's arithmetic and tables (the timings themselves are never asserted)."""

from oakpipe.bench.machine import describe_machine, peak_fp32_gflops
from oakpipe.bench.tables import markdown


def fake_results() -> dict:
    runtime = {"fps": 40.0, "min": 38.0, "max": 42.0, "runs": 3}
    return {
        "date": "2026-11-26T00:00:00", "quick": True, "machine": describe_machine(),
        "peak": {"gflops": 200.0, "median": 190.0, "min": 180.0, "size": 2048, "method": "m"},
        "conversion": [{"model": "stylizer", "size": 256, "cold_s": 5.0,
                        "stages_s": {"onnx": 2.0, "device": 0.1, "ir": 0.5, "blob": 0.5, "archive": 0.1},
                        "cached_in_process_s": 0.01, "cached_cli_s": 0.3, "blob_bytes": 2048,
                        "python_pass_s": 0.03, "help_s": 0.2, "cached_cli_over_python": 10.0,
                        "cached_cli_over_help": 1.5}],
        "large_models": [{"model": "ResNet-50", "input": [1, 3, 224, 224], "cold_s": 40.0,
                          "stages_s": {"onnx": 10.0, "device": 1.0, "ir": 3.0, "blob": 5.0, "archive": 1.0,
                                       "verify": 15.0},
                          "archive_share": 0.025, "archive_bytes": 50 * 2**20, "verified": True},
                         {"model": "YOLOv8n", "input": [1, 3, 416, 416], "skipped": "Ultralytics is not installed"}],
        "manual_2021": {"model": "stylizer", "size": 256, "model_optimizer_s": 15.0, "compile_s": 5.0,
                        "total_s": 20.0},
        "inference": {"model": "stylizer", "size": 256, "gmac": 1.0,
                      "runtimes": {"pytorch": runtime, "onnxruntime": runtime, "openvino": runtime,
                                   "pipeline": {**runtime, "fps": 36.0, "stage_ms": {"inference": 25.0}}},
                      "pipeline_over_openvino": 0.9},
        "pipeline": {"model": "benchcnn", "gmac": 1.24, "openvino": runtime, "pipeline": {**runtime, "fps": 38.0},
                     "pipeline_over_openvino": 0.95,
                     "halve": {**runtime, "fps": 800.0, "stage_ms": {"capture": 0.1, "display": 0.3}}},
        "scaling": [{"model": "stylizer", "size": 128, "gmac": 0.25, "cold_convert_s": 2.0, "openvino_fps": 100.0,
                     "blob_bytes": 1024}],
    }


def test_tables_show_ratios_and_fractions_of_peak():
    text = markdown(fake_results())
    assert "| openvino | 40.0 | 38.0-42.0 | 80.0 | 40% |" in text  # 1 GMAC * 2 * 40 FPS / 200 GFLOP/s
    assert "Pipeline / raw OpenVINO: 90%" in text
    assert "Raw OpenVINO 40.0 FPS, `oakpipe run` 38.0 FPS: 95%" in text
    assert "halve (inference nearly free): 800 FPS; ms per frame, medians: capture 0.10, display 0.30." in text
    assert "20.0 s; oakpipe's IR + blob stages: 1.0 s (20.0x faster)" in text
    assert "| stylizer | 128x128 | 0.25 | 2.0 | 100.0 | 25% | 1 KiB |" in text
    assert "0.30 s = 10.0x `python -c pass` (0.030 s), 1.50x `oakpipe --help` (0.20 s)" in text


def test_large_models_show_every_stage_and_say_why_a_row_is_missing():
    text = markdown(fake_results())
    assert "| ResNet-50 | 224x224 | 40.0 | 10.00 | 1.00 | 3.00 | 5.00 | 1.00 | 15.00 | 2% | 50.0 MiB | passed |" in text
    assert "YOLOv8n at 416x416: not measured: Ultralytics is not installed." in text


def test_peak_is_the_best_of_its_runs():
    peak = peak_fp32_gflops(size=256, repeats=3)
    assert peak["min"] <= peak["median"] <= peak["gflops"] and peak["gflops"] > 0


def test_decode_draw_table_shows_ratios_per_setting():
    results = fake_results()
    row = {"model": "yolo11n-seg", "source": "photo", "conf": 0.25, "frames": 75, "ratio_median": 0.054,
           "ratio_p90": 0.081, "ms": {"inference": 30.0, "decode": 1.5, "draw": 0.12}, "boxes": [3, 9],
           "line_bytes": 2048}
    results["decode_draw"] = {"size": 416, "warmup": 5, "rows": [row]}
    assert "| yolo11n-seg | photo 0.25 | 3 (9) | 30.0 | 1.50 | 0.12 | 5.4% | 8.1% | 2048 |" in markdown(results)
    results["decode_draw"] = {"skipped": "Ultralytics is not installed"}
    assert "Not measured: Ultralytics is not installed." in markdown(results)


def test_run_summary_gives_decode_and_draw_as_a_share_of_inference():
    from oakpipe.live.result import RunSummary

    stage_ms = {"inference": [20.0, 40.0, 10.0, float("nan")], "decode": [1.0, 2.0, 0.5, 1.0],
                "draw": [1.0, float("nan"), 0.5, 1.0]}  # NaN draw: none (generic view); NaN inference: not timed
    summary = RunSummary("host", "sample", 4, 1.0, "done", stage_ms, [30.0] * 4)
    ratios = summary.decode_draw_ratios()
    assert list(ratios) == [0.1, 0.05, 0.1]
    assert "decode+draw 10% of inference (median per frame, p90 10%)" in summary.one_line()
    assert "of inference" not in RunSummary("device", "camera", 1, 1.0, "done", {"inference": [float("nan")],
                                                                                  "decode": [1.0]}, [5.0]).one_line()
