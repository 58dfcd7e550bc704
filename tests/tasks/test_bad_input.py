"""Bad input to task models, as a hostile tester gives it: one line each (exit 2: the user's
to fix) saying what to do, refused before anything is exported."""

from __future__ import annotations

import sys
import types
import zipfile

import pytest
import torch
from torch import nn

from oakpipe.errors import ModelError, UserError


@pytest.fixture(scope="module")
def ultralytics_loader():
    pytest.importorskip("ultralytics")
    from tests.fixtures import torchvision_shim

    torchvision_shim.install()
    from oakpipe.tasks import ultralytics_model

    return ultralytics_model


def test_a_checkpoint_from_another_ultralytics_version_names_the_missing_module(ultralytics_loader, tmp_path):
    module = types.ModuleType("ultralytics.nn.modules.future_head")

    class FutureDetect(nn.Module):  # pickled by reference to a module this Ultralytics lacks
        pass

    FutureDetect.__module__, FutureDetect.__qualname__ = module.__name__, "FutureDetect"
    module.FutureDetect = FutureDetect  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        torch.save({"model": FutureDetect()}, tmp_path / "best.pt")
    finally:
        del sys.modules[module.__name__]
    with pytest.raises(UserError, match="needs module ultralytics.nn.modules.future_head") as caught:
        ultralytics_loader.load_model(tmp_path / "best.pt")
    assert "pip install -U ultralytics" in caught.value.one_line()


def test_damaged_and_foreign_checkpoints_are_one_user_error(ultralytics_loader, tmp_path):
    saved = tmp_path / "whole.pt"
    torch.save({"weights": torch.zeros(1000)}, saved)
    (tmp_path / "truncated.pt").write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with zipfile.ZipFile(tmp_path / "zip.pt", "w") as archive:
        archive.writestr("hello.txt", "not a checkpoint")
    torch.save(nn.Conv2d(3, 3, 1).state_dict(), tmp_path / "state_dict.pt")
    for name in ("truncated.pt", "zip.pt"):
        with pytest.raises(UserError, match=f"{name} cannot be loaded by Ultralytics") as caught:
            ultralytics_loader.load_model(tmp_path / name)
        assert str(tmp_path) not in caught.value.message  # the file's name, not Ultralytics' full path
    with pytest.raises(UserError, match="state_dict.pt holds no Ultralytics model"):
        ultralytics_loader.load_model(tmp_path / "state_dict.pt")


@pytest.mark.parametrize("text", ["foo: bar\n", "", "nc: 2\nbackbone: [[-1, 1, NoSuchLayer, [8]]]\nhead: []\n",
                                  "{{{ not: yaml ::\n"], ids=["other", "empty", "unknown-layer", "garbled"])
def test_a_yaml_that_is_not_an_ultralytics_model(ultralytics_loader, tmp_path, text):
    path = tmp_path / "model.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match="model.yaml is not a model YAML Ultralytics") as caught:
        ultralytics_loader.load_model(path)
    assert "\n" not in caught.value.one_line() and len(caught.value.one_line()) < 400


@pytest.fixture(scope="module")
def three_names_classifier(ultralytics_loader, tmp_path_factory):
    """A yolov8n-cls checkpoint (1000 classes) whose names dict lists three."""
    from tests.fixtures.ultralytics_models import make_checkpoint

    return make_checkpoint("yolov8n-cls.yaml", tmp_path_factory.mktemp("cls") / "best.pt", size=64,
                           names=["a", "b", "c"])


def test_class_names_that_do_not_fit_the_head(ultralytics_loader, three_names_classifier, tmp_path):
    with pytest.raises(ModelError, match="names 3 classes but its head predicts 1000") as caught:
        ultralytics_loader.build(three_names_classifier)
    assert "--labels" in caught.value.one_line()  # what to do
    wrong = tmp_path / "two.txt"
    wrong.write_text("x\ny\n")
    with pytest.raises(UserError, match="lists 2 classes but best.pt's head predicts 1000"):
        ultralytics_loader.build(three_names_classifier, labels=wrong)
    right = tmp_path / "labels.txt"
    right.write_text("".join(f"kind{i}\n" for i in range(1000)))
    _, info = ultralytics_loader.build(three_names_classifier, labels=right)
    assert info.names[7] == "kind7"  # --labels replaces the checkpoint's names


@pytest.mark.parametrize("content, said", [(b"", "holds no class names"), (b"\n \n\t\n", "holds no class names"),
                                           (bytes(range(256)), "is not UTF-8 text"),
                                           (b"cat\x00\ndog\n", "holds NUL bytes")],
                         ids=["empty", "blank", "binary", "nul"])
def test_an_empty_or_garbled_labels_file_is_refused_before_any_stage(tmp_path, content, said):
    from oakpipe import ConvertOptions

    labels = tmp_path / "labels.txt"
    labels.write_bytes(content)
    with pytest.raises(UserError, match=said):
        ConvertOptions(model="halve", task="classify", labels=labels)


def test_cli_garbled_labels_is_one_line_and_writes_nothing(tmp_path, capsys):
    from oakpipe.cli import main

    labels = tmp_path / "labels.txt"
    labels.write_bytes(bytes(range(256)))
    code = main(["convert", "halve", "--task", "classify", "--labels", str(labels), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "is not UTF-8 text" in err
    assert not (tmp_path / "out").exists()


def test_an_rt_detr_yaml_is_refused_naming_its_decoder(ultralytics_loader):
    """RT-DETR builds only through Ultralytics' RTDETR class: the refusal names the model,
    not "not a model YAML"."""
    from oakpipe.errors import UnsupportedModelError

    with pytest.raises(UnsupportedModelError, match="rtdetr-l.yaml is an RT-DETR model"):
        ultralytics_loader.load_model(ultralytics_loader.bundled_yaml("rtdetr-l.yaml"))


def test_a_missing_yaml_is_not_called_a_checkpoint(ultralytics_loader, tmp_path):
    from oakpipe.models.source import parse_model_spec

    with pytest.raises(UserError, match="model YAML .*no-such-model.yaml not found"):
        parse_model_spec(str(tmp_path / "no-such-model.yaml"))
