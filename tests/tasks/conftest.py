"""Ultralytics exports shared by the task tests (built once per session: about a minute each).

The checkpoints have random weights with BatchNorm statistics recalibrated on photos (see
tests/fixtures/ultralytics_models.py); no pretrained weights can be downloaded here.
"""

from __future__ import annotations

import pytest

from tests.fixtures import torchvision_shim

SIZE = 320


@pytest.fixture(scope="session")
def yolo_checkpoint(tmp_path_factory):
    pytest.importorskip("ultralytics")
    from tests.fixtures.ultralytics_models import make_checkpoint

    names = [f"thing{i}" for i in range(80)]
    return make_checkpoint("yolo11n.yaml", tmp_path_factory.mktemp("yolo") / "best.pt", size=SIZE, names=names)


@pytest.fixture(scope="session")
def yolo_export(yolo_checkpoint, tmp_path_factory):
    """``oakpipe convert best.pt`` (verify off: the verdicts are another test's subject)."""
    torchvision_shim.install()
    from oakpipe import ConvertOptions, convert

    out = tmp_path_factory.mktemp("yolo_export") / "best"
    return convert(ConvertOptions(model=str(yolo_checkpoint), input_shape=(1, 3, SIZE, SIZE), out=out, verify=False))


CLS_SIZE = 224


@pytest.fixture(scope="session")
def cls_checkpoint(tmp_path_factory):
    pytest.importorskip("ultralytics")
    from tests.fixtures.ultralytics_models import make_checkpoint

    names = [f"kind{i}" for i in range(1000)]
    path = tmp_path_factory.mktemp("yolo_cls") / "best.pt"
    return make_checkpoint("yolo11n-cls.yaml", path, size=CLS_SIZE, names=names)


@pytest.fixture(scope="session")
def cls_export(cls_checkpoint, tmp_path_factory):
    torchvision_shim.install()
    from oakpipe import ConvertOptions, convert

    out = tmp_path_factory.mktemp("cls_export") / "best"
    shape = (1, 3, CLS_SIZE, CLS_SIZE)
    return convert(ConvertOptions(model=str(cls_checkpoint), input_shape=shape, out=out, verify=False))


def _checkpoint(yaml: str, folder: str, tmp_path_factory):
    pytest.importorskip("ultralytics")
    from tests.fixtures.ultralytics_models import make_checkpoint

    return make_checkpoint(yaml, tmp_path_factory.mktemp(folder) / "best.pt", size=SIZE)


def _export(checkpoint, folder: str, tmp_path_factory):
    torchvision_shim.install()
    from oakpipe import ConvertOptions, convert

    out = tmp_path_factory.mktemp(folder) / "best"
    return convert(ConvertOptions(model=str(checkpoint), input_shape=(1, 3, SIZE, SIZE), out=out, verify=False))


@pytest.fixture(scope="session")
def pose_checkpoint(tmp_path_factory):
    return _checkpoint("yolo11n-pose.yaml", "yolo_pose", tmp_path_factory)


@pytest.fixture(scope="session")
def pose_export(pose_checkpoint, tmp_path_factory):
    return _export(pose_checkpoint, "pose_export", tmp_path_factory)


@pytest.fixture(scope="session")
def seg_checkpoint(tmp_path_factory):
    return _checkpoint("yolo11n-seg.yaml", "yolo_seg", tmp_path_factory)


@pytest.fixture(scope="session")
def seg_export(seg_checkpoint, tmp_path_factory):
    return _export(seg_checkpoint, "seg_export", tmp_path_factory)


@pytest.fixture(scope="session")
def v10_checkpoint(tmp_path_factory):
    return _checkpoint("yolov10n.yaml", "yolo_v10", tmp_path_factory)


@pytest.fixture(scope="session")
def v10_export(v10_checkpoint, tmp_path_factory):
    return _export(v10_checkpoint, "v10_export", tmp_path_factory)


@pytest.fixture(scope="session")
def y26_checkpoint(tmp_path_factory):
    return _checkpoint("yolo26n.yaml", "yolo_26", tmp_path_factory)


@pytest.fixture(scope="session")
def y26_export(y26_checkpoint, tmp_path_factory):
    return _export(y26_checkpoint, "y26_export", tmp_path_factory)


@pytest.fixture(scope="session")
def y26pose_checkpoint(tmp_path_factory):
    return _checkpoint("yolo26n-pose.yaml", "yolo_26_pose", tmp_path_factory)


@pytest.fixture(scope="session")
def y26pose_export(y26pose_checkpoint, tmp_path_factory):
    return _export(y26pose_checkpoint, "y26_pose_export", tmp_path_factory)


@pytest.fixture(scope="session")
def y26seg_checkpoint(tmp_path_factory):
    return _checkpoint("yolo26n-seg.yaml", "yolo_26_seg", tmp_path_factory)


@pytest.fixture(scope="session")
def y26seg_export(y26seg_checkpoint, tmp_path_factory):
    return _export(y26seg_checkpoint, "y26_seg_export", tmp_path_factory)
