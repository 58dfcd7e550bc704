"""Fast checks of the task pieces that need no export: MODEL parsing, refusing foreign
pickles, the results file, decoding a synthetic classifier output, drawing."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from oakpipe.errors import UserError


def test_missing_checkpoint_is_a_user_error(tmp_path):
    from oakpipe.models.source import parse_model_spec

    with pytest.raises(UserError, match="not found"):
        parse_model_spec(str(tmp_path / "best.pt"))


class Payload:
    """Unpickling this would create a file: the loader must refuse it without running it."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_foreign_pickle_is_refused_not_executed(tmp_path):
    pytest.importorskip("ultralytics")
    import torch

    from tests.fixtures import torchvision_shim

    torchvision_shim.install()
    from oakpipe.tasks.ultralytics_model import load_model

    marker = tmp_path / "executed"
    path = tmp_path / "best.pt"
    torch.save({"model": Payload(str(marker))}, path, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with pytest.raises(UserError, match="cannot be loaded by Ultralytics"):
        load_model(path)
    assert not marker.exists()


def test_results_file_appears_only_when_complete(tmp_path):
    from oakpipe.tasks.decode import Decoded, Detection
    from oakpipe.tasks.results import ResultsWriter

    path = tmp_path / "out.jsonl"
    writer = ResultsWriter(path)
    writer.write(0, 0.5, Decoded("detect", [Detection((1.0, 2.0, 30.0, 40.0), 3, "cat", 0.9)]))
    assert not path.exists()  # a reader never sees a partial file under the final name
    writer.close()
    line = json.loads(path.read_text())
    assert line == {"sequence": 0, "timestamp": 0.5, "task": "detect",
                    "detections": [{"box": [1.0, 2.0, 30.0, 40.0], "class_id": 3, "name": "cat", "score": 0.9}]}
    assert list(tmp_path.iterdir()) == [path]
    with pytest.raises(UserError, match="JSON lines"):
        ResultsWriter(tmp_path / "out.txt")


def test_classification_parser_decodes_top5_from_nn_data():
    from oakpipe.tasks.decode import TaskDecoder

    names = [f"c{i}" for i in range(10)]
    head = {"parser": "ClassificationParser", "outputs": ["output"], "classes": names, "n_classes": 10,
            "is_softmax": True}
    probs = np.array([0.01, 0.3, 0.05, 0.2, 0.02, 0.15, 0.1, 0.07, 0.06, 0.04], np.float32)
    top = TaskDecoder(head, [1, 3, 64, 64]).decode({"output": probs[None]}).top
    assert [i for i, _, _ in top] == [1, 3, 5, 6, 7]
    assert [n for _, n, _ in top] == ["c1", "c3", "c5", "c6", "c7"]
    np.testing.assert_allclose([s for _, _, s in top], probs[[1, 3, 5, 6, 7]], rtol=1e-6)  # float32 copy


def test_yolo_parser_decodes_a_planted_box():
    """One cell of a 3-stride YOLO cut with a confident class: one box where the grid puts it."""
    from oakpipe.tasks.decode import TaskDecoder

    nc, size = 2, 64
    outputs = {}
    for i, stride in enumerate((8, 16, 32)):
        cells = size // stride
        outputs[f"output{i + 1}_yolov8"] = np.zeros((1, 5 + nc, cells, cells), np.float32)
    grid = outputs["output1_yolov8"]
    grid[0, :4, 2, 3] = [1.0, 1.0, 2.0, 2.0]  # l, t, r, b in cells, around cell (x=3, y=2)
    grid[0, 4, 2, 3] = grid[0, 5 + 1, 2, 3] = 0.9  # class 1
    head = {"parser": "YOLOExtendedParser", "outputs": list(outputs), "classes": ["a", "b"], "n_classes": nc,
            "conf_threshold": 0.5, "iou_threshold": 0.45, "strides": [8, 16, 32], "subtype": "yolov8",
            "yolo_outputs": list(outputs)}
    (det,) = TaskDecoder(head, [1, 3, size, size]).decode(outputs).detections
    assert (det.class_id, det.name) == (1, "b")
    # centre of cell (3, 2) is (3.5, 2.5) cells; l/t 1 cell, r/b 2 cells; stride 8 px
    np.testing.assert_allclose(det.box, [20.0, 12.0, 44.0, 36.0], atol=1e-4)  # float32 arithmetic
    np.testing.assert_allclose(det.score, 0.9, rtol=1e-6)


def test_draw_paints_boxes_and_labels():
    from oakpipe.tasks.decode import Decoded, Detection
    from oakpipe.tasks.draw import draw

    frame = np.zeros((64, 64, 3), np.uint8)
    picture = draw(frame, Decoded("detect", [Detection((10.0, 20.0, 50.0, 60.0), 0, "a", 0.9)]))
    assert picture[40, 10].any() and not picture[40, 30].any()  # the edge, not the inside
    assert not frame.any()  # the input is left alone
    top = draw(frame, Decoded("classify", top=[(1, "b", 0.8), (0, "a", 0.2)]))
    assert top[:40].any() and not top[50:].any()


def test_cli_refuses_a_foreign_pickle_in_one_line(tmp_path, capsys):
    pytest.importorskip("ultralytics")
    import torch

    from oakpipe.cli import main

    marker = tmp_path / "executed"
    path = tmp_path / "best.pt"
    torch.save({"model": Payload(str(marker))}, path)
    code = main(["convert", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and not marker.exists()
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if "error" in line][0].count("cannot be loaded by Ultralytics") == 1
    assert not (tmp_path / "out" / "best.onnx").exists()


def test_a_bundled_yaml_keeps_its_scale():
    pytest.importorskip("ultralytics")
    from tests.fixtures import torchvision_shim

    torchvision_shim.install()
    from oakpipe.models.loader import build_module
    from oakpipe.models.source import parse_model_spec
    from oakpipe.options import ConvertOptions

    nano, small = parse_model_spec("yolo11n.yaml"), parse_model_spec("yolo11s.yaml")
    assert (nano.kind, nano.name) == ("ultralytics", "yolo11n")
    assert nano.path == small.path and nano.fingerprint() != small.fingerprint()  # one file, two scales
    module = build_module(nano, ConvertOptions(model="yolo11n.yaml"))
    assert module.oakpipe_task.task == "detect" and module.oakpipe_task.strides == [8, 16, 32]
    params = sum(p.numel() for p in module.parameters())
    assert 2.0e6 < params < 3.5e6  # YOLO11n has 2.6 M parameters (11s: 9.4 M)


def test_draw_tints_masks_with_the_later_instance_on_top():
    from oakpipe.tasks.decode import Decoded, Detection
    from oakpipe.tasks.draw import class_colour, draw_masks
    from oakpipe.tasks.masks import InstanceMasks

    masks = np.zeros((2, 8, 8), bool)
    masks[0, :4], masks[1, 2:6] = True, True
    picture = np.zeros((8, 8, 3), np.uint8)
    draw_masks(picture, InstanceMasks.from_array(masks), [0, 1], alpha=1.0)
    assert tuple(picture[0, 0]) == class_colour(0) and tuple(picture[3, 0]) == class_colour(1)
    assert not picture[7].any()
    assert Decoded("segment", [Detection((0, 0, 8, 4), 0, "a", 0.5)], masks=InstanceMasks.from_array(masks[:1])).to_dict()[
        "detections"][0]["mask_pixels"] == 32


@pytest.mark.toolchain  # the halve export runs every stage
def test_results_for_a_model_without_a_head_is_refused(halve_export, tmp_path):
    from oakpipe.live import run_export
    from oakpipe.live.options import RunOptions

    options = RunOptions(backend="host", source="sample", frames=1, display="none", results=tmp_path / "r.jsonl")
    with pytest.raises(UserError, match="names no parser"):
        run_export(halve_export.folder, options)
    assert not list(tmp_path.iterdir())
