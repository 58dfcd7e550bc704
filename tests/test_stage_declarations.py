"""Stages declare themselves (oakpipe.stages.declare); the runner follows the declarations."""

from __future__ import annotations

import importlib
import io
import json
from pathlib import Path

import pytest

from oakpipe.codehash import module_file
from oakpipe.convert import STAGES, ConvertOptions, convert, ordered_stages
from oakpipe.progress import Progress
from oakpipe.stages.declare import Stage, stage_order
from oakpipe.stages.registry import STAGES as REGISTERED

convert_module = importlib.import_module("oakpipe.convert")  # the module; oakpipe.convert is the function


def test_each_declared_input_is_produced_by_an_earlier_stage():
    order = ordered_stages()
    assert sorted(map(id, order)) == sorted(map(id, REGISTERED))  # every stage, once
    for position, stage in enumerate(order):
        producers = {s.name for s in order[:position]}
        assert set(stage.consumes) <= producers, f"{stage.name} runs before what it consumes"
        later = {s.name for s in order[position + 1:]}  # and every producer of a name is placed before it
        assert not set(stage.consumes) & later, stage.name
    # The manifest's layout (tests/test_manifest.py, exports made before) follows from the order.
    assert STAGES == ("onnx", "device", "ir", "blob", "archive")


def test_every_declared_entry_module_exists():
    """A misspelled entry module would key the stage by nothing: the cache would not be honest."""
    for stage in REGISTERED:
        assert stage.code, stage.name
        for name in stage.code:
            assert module_file(name) is not None, f"{stage.name}: {name}"


def declared(name: str, consumes: tuple[str, ...]) -> Stage:
    return Stage(name, consumes=consumes, options=(), code=(), tools=(), artifacts=lambda runner: [],
                 body=lambda runner, paths: {})


def test_the_order_comes_from_the_declarations_not_the_list():
    c, b, a = declared("c", ("b",)), declared("b", ("a",)), declared("a", ())
    assert [s.name for s in stage_order([c, b, a])] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="no stage produces"):
        stage_order([declared("b", ("a",))])
    with pytest.raises(ValueError, match="consume each other"):
        stage_order([declared("a", ("b",)), declared("b", ("a",))])


def _ir_size_body(runner, paths: dict[str, Path]) -> dict:
    size = runner.manifest.artifact("ir", ".bin").stat().st_size
    paths["ir_size.json"].write_text(json.dumps({"bytes": size}))
    return {"bytes": size}


#: A stage added by one declaration: it consumes the IR and writes one report.
IR_SIZE = Stage("ir_size", consumes=("ir",), options=(), code=("oakpipe.manifest",), tools=("oakpipe",),
                artifacts=lambda runner: ["ir_size.json"], body=_ir_size_body)


def test_a_registered_stage_runs_after_its_input_is_cached_and_is_recorded(monkeypatch, tmp_path):
    monkeypatch.setattr(convert_module, "REGISTERED", (IR_SIZE, *REGISTERED))  # registered first: ordered by input
    options = ConvertOptions(model="halve", out=tmp_path / "halve", verify=False)
    stream = io.StringIO()
    export = convert(options, Progress(stream=stream))
    record = export.manifest["stages"]["ir_size"]
    assert record["info"]["bytes"] == (export.folder / "halve.bin").stat().st_size > 0
    assert json.loads((export.folder / "ir_size.json").read_text()) == record["info"]
    lines = [line.split()[0] for line in stream.getvalue().splitlines() if line.startswith("  ")]
    assert lines.index("ir_size") == lines.index("ir") + 1  # its progress line, right after its input
    stream = io.StringIO()
    convert(options, Progress(stream=stream))
    assert "(all cached)" in stream.getvalue()  # keyed like any other stage
