"""The README's Python example runs as printed (so the documentation cannot rot)."""

import os
import runpy
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.toolchain
def test_python_api_example_runs(tmp_path, monkeypatch):
    text = README.read_text()
    start = text.index("```python\n") + len("```python\n")
    code = text[start:text.index("```", start)]
    (tmp_path / "example.py").write_text(code)
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(tmp_path / "example.py"), run_name="__main__")
    assert (tmp_path / "tiny.mp4").stat().st_size > 0
    assert (tmp_path / "exports" / "tiny" / "manifest.json").is_file()
    assert os.path.isdir(tmp_path / "exports" / "halve")
