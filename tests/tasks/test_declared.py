"""``--task`` for models that do not say what they are: convert, archive head, run on the host.

The models (tests/fixtures/task_models.py) are tiny, with hand-set weights whose outputs have
clear margins, so the decoded result on the host (the FP16-weight IR) equals PyTorch's.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from oakpipe.errors import UserError
from tests.fixtures.task_models import TinyClassifier, TinyDepth, TinySegmenter

SIZE = 64


def export(model, tmp_path, **options):
    import oakpipe

    return oakpipe.convert(model, input_shape=(1, 3, SIZE, SIZE), out=tmp_path / "export", **options)


def run_on_photo(export_, tmp_path):
    """Two host frames of the astronaut: (results lines, [(frame shown, picture drawn)])."""
    import cv2
    from skimage import data

    from oakpipe.live import run_export
    from oakpipe.live.options import RunOptions

    image = tmp_path / "astronaut.png"
    cv2.imwrite(str(image), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    results = tmp_path / "out.jsonl"
    pictures: list = []
    options = RunOptions(backend="host", source=str(image), frames=2, display="none", results=results)
    run_export(export_.folder, options, on_frame=lambda item, picture: pictures.append((item.frame, picture)))
    return [json.loads(line) for line in results.read_text().splitlines()], pictures


def torch_on(model, frame: np.ndarray) -> np.ndarray:
    """The model on the frame shown (BGR U8 at the network size), as the default contract feeds it."""
    import torch

    x = np.ascontiguousarray(frame[..., ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
    with torch.no_grad():
        return model.eval()(torch.from_numpy(x)).numpy()


def archive_head(export_) -> dict:
    from luxonis_ml.nn_archive.config import Config

    from oakpipe.live.archive_input import read_config

    config = read_config(export_.archive)[0]
    Config(**config)  # luxonis-ml's own validation
    return config["model"]["heads"][0]


@pytest.mark.toolchain
def test_a_declared_classifier_gets_a_head_and_its_top5_on_the_host(tmp_path):
    model = TinyClassifier()
    exported = export(model, tmp_path, task="classify")
    head = archive_head(exported)
    assert head["parser"] == "ClassificationParser" and head["metadata"]["classes"] == TinyClassifier.class_names
    assert head["metadata"]["is_softmax"] is False  # logits: the parser applies the softmax
    lines, pictures = run_on_photo(exported, tmp_path)
    top = lines[0]["top"]
    logits = torch_on(model, pictures[0][0])[0]
    assert [t["class_id"] for t in top] == list(np.argsort(-logits)[:5])
    probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    # FP16 weights in the host IR: probabilities agree to about FP16's 3 significant digits
    np.testing.assert_allclose([t["score"] for t in top], np.sort(probabilities)[::-1][:5], atol=5e-3)
    assert top[0]["name"] == TinyClassifier.class_names[top[0]["class_id"]]
    assert not np.array_equal(*pictures[0])  # the labels were drawn


@pytest.mark.toolchain
def test_a_declared_semantic_segmenter_draws_its_class_map(tmp_path):
    model = TinySegmenter()
    labels = tmp_path / "labels.txt"
    labels.write_text("red\ngreen\nblue\ndark\n")
    exported = export(model, tmp_path, task="segment-semantic", labels=labels)
    head = archive_head(exported)
    assert head["parser"] == "SegmentationParser" and head["metadata"]["classes"] == ["red", "green", "blue", "dark"]
    lines, pictures = run_on_photo(exported, tmp_path)
    counts = {c["class_id"]: c["pixels"] for c in lines[0]["classes"]}
    # pixels of the frame shown (SIZE x SIZE): the 32x32 map drawn at twice its size, 4 pixels a cell
    expected = 4 * np.bincount(torch_on(model, pictures[0][0])[0].argmax(0).ravel(), minlength=4)
    assert sum(counts.values()) == SIZE**2
    # hand-set weights leave a margin on most pixels; a few near-ties may flip under FP16 weights
    for class_id in range(4):
        assert abs(counts.get(class_id, 0) - expected[class_id]) <= 0.02 * SIZE**2, (counts, expected)
    from oakpipe.tasks.rle import decode

    masks = [decode(c["mask"]) for c in lines[0]["classes"]]
    assert all(m.shape == (SIZE, SIZE) for m in masks) and not np.logical_and(*masks[:2]).any()  # one class a pixel
    assert [int(m.sum()) for m in masks] == [c["pixels"] for c in lines[0]["classes"]]
    assert {c["name"] for c in lines[0]["classes"]} <= {"red", "green", "blue", "dark"}
    frame, picture = pictures[0]
    assert picture.shape == frame.shape and not np.array_equal(picture, frame)


@pytest.mark.toolchain
def test_a_declared_depth_model_is_colour_mapped(tmp_path):
    model = TinyDepth()
    exported = export(model, tmp_path, task="depth")
    assert archive_head(exported)["parser"] == "MapOutputParser"
    lines, pictures = run_on_photo(exported, tmp_path)
    depth = lines[0]["depth"]
    expected = torch_on(model, pictures[0][0])[0, 0]
    assert depth["shape"] == [SIZE // 2, SIZE // 2]
    # FP16 weights and FP16-exact constants: values near 4 agree to ~1e-3 (FP16's spacing there is 2e-3)
    np.testing.assert_allclose([depth["min"], depth["median"], depth["max"]],
                               [expected.min(), np.median(expected), expected.max()], atol=1e-2)
    frame, picture = pictures[0]
    assert picture.shape == frame.shape and len(np.unique(picture.reshape(-1, 3), axis=0)) > 8  # a colour map


def test_labels_that_do_not_match_the_output_are_refused(tmp_path):
    from oakpipe.tasks.declared import class_names

    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    with pytest.raises(UserError, match="lists 2 classes but the model outputs 10"):
        class_names(labels, None, 10)
    assert class_names(None, TinyClassifier(), 10) == TinyClassifier.class_names
    assert class_names(None, object(), 3) == ["0", "1", "2"]


def test_an_output_the_task_cannot_read_is_refused_in_one_line(tmp_path):
    from oakpipe.tasks.declared import declared_task

    image_out = {"outputs": [{"name": "out", "shape": [1, 3, 64, 64]}]}
    with pytest.raises(UserError, match=r"--task classify reads \[1, N\] class scores"):
        declared_task("classify", None, None, tmp_path / "unused.onnx", image_out)
    with pytest.raises(UserError, match=r"--task depth reads"):
        declared_task("depth", None, None, tmp_path / "unused.onnx", image_out)
    two = {"outputs": [{"name": "a", "shape": [1, 10]}, {"name": "b", "shape": [1, 10]}]}
    with pytest.raises(UserError, match="reads one output; the model has 2"):
        declared_task("classify", None, None, tmp_path / "unused.onnx", two)


def test_task_choices_are_checked_with_the_options(tmp_path):
    from oakpipe import ConvertOptions

    with pytest.raises(UserError, match="--task 'boxes' is unknown"):
        ConvertOptions(model="halve", task="boxes")
    with pytest.raises(UserError, match="a depth model has none"):
        ConvertOptions(model="halve", task="depth", labels=tmp_path / "x.txt")


@pytest.mark.toolchain
def test_an_onnx_classifier_declared_on_the_command_line(tmp_path, capsys):
    import torch

    from oakpipe.cli import main

    sources = tmp_path / "out" / "src"  # inside the export: found again by `oakpipe verify EXPORT_DIR`
    sources.mkdir(parents=True)
    onnx_path = sources / "tiny.onnx"
    torch.onnx.export(TinyClassifier().eval(), torch.zeros(1, 3, SIZE, SIZE), str(onnx_path), input_names=["input"],
                      output_names=["logits"], opset_version=12, dynamo=False)
    labels = sources / "labels.txt"
    labels.write_text("".join(f"name{i}\n" for i in range(10)))
    shape = f"1,3,{SIZE},{SIZE}"
    assert main(["convert", str(onnx_path), "--input-shape", shape, "--task", "classify", "--labels", str(labels),
                 "--out", str(tmp_path / "out")]) == 0
    from oakpipe.convert import Export

    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    head = archive_head(Export(tmp_path / "out", manifest))
    assert head["outputs"] == ["logits"] and head["metadata"]["classes"][3] == "name3"
    assert main(["verify", str(tmp_path / "out")]) == 0  # from the folder: --task and --labels come back
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert archive_head(Export(tmp_path / "out", manifest))["metadata"]["classes"][3] == "name3"
    labels.write_text("just one\n")  # the labels are part of the export's key: a new file is read again
    assert main(["convert", str(onnx_path), "--input-shape", shape, "--task", "classify", "--labels", str(labels),
                 "--out", str(tmp_path / "out")]) == 2
    assert "lists 1 classes but the model outputs 10" in capsys.readouterr().err
    assert main(["convert", str(onnx_path), "--input-shape", shape, "--task", "detect",
                 "--out", str(tmp_path / "out2")]) == 2
    assert "--task detect needs a model that describes its head" in capsys.readouterr().err
