"""Bad input through the real command: one line, a non-zero exit, no traceback."""

import os
import subprocess
import sys

import pytest

from tests.conftest import MODELS_FILE


def oakpipe(*args, env=None, cwd=None):
    environment = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "oakpipe", *args], capture_output=True, text=True,
                          env=environment, cwd=cwd, timeout=300)


def assert_one_line_error(proc, code, *phrases):
    assert proc.returncode == code, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("oakpipe:")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "code", "phrases"),
    [
        (["convert", "nope.py:Net"], 2, ["nope.py not found"]),
        (["convert", f"{MODELS_FILE}:Missing"], 2, ["has no 'Missing'", "small_cnn"]),
        (["convert", f"{MODELS_FILE}:NOT_A_MODULE"], 2, ["neither an nn.Module"]),
        (["convert", f"{MODELS_FILE}:Raising", "--input-shape", "1,3,32,32"], 2, ["deliberate failure"]),
        (["convert", "halve", "--input-shape", "1,3,256"], 2, ["4 dimensions"]),
        (["convert", "halve", "--shaves", "17"], 2, ["outside 1..16"]),
        (["convert", "halve", "--mean-values", "1,2"], 2, ["1 or 3 values"]),
        (["convert", "unknown-model"], 2, ["unknown model", "halve"]),
        (["convert", "halve", "--style", "x.jpg"], 2, ["no such file"]),
    ],
)
def test_user_mistakes(tmp_path, args, code, phrases):
    assert_one_line_error(oakpipe(*args, cwd=tmp_path), code, *phrases)
    assert not list(tmp_path.rglob("*.blob"))


def test_corrupt_onnx(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_text("garbage")
    assert_one_line_error(oakpipe("convert", str(bad), cwd=tmp_path), 2, "not a valid ONNX model")


def test_weights_that_do_not_match_name_the_keys(tmp_path):
    import torch

    from tests.fixtures.models import small_cnn

    state = small_cnn().state_dict()
    state["extra.weight"] = state.pop("head.weight")
    torch.save(state, tmp_path / "w.pt")
    proc = oakpipe("convert", f"{MODELS_FILE}:small_cnn", "--weights", str(tmp_path / "w.pt"), cwd=tmp_path)
    assert_one_line_error(proc, 2, "missing: head.weight", "unexpected: extra.weight")


def test_missing_toolchain_says_how_to_install(tmp_path):
    proc = oakpipe("convert", "halve", "--input-shape", "1,3,32,32", cwd=tmp_path,
                   env={"OAKPIPE_TOOLCHAIN_DIR": str(tmp_path / "none")})
    assert_one_line_error(proc, 5, "not installed", "oakpipe toolchain install")
    assert not list(tmp_path.rglob("*.blob"))


def test_debug_shows_the_traceback(tmp_path):
    proc = oakpipe("--debug", "convert", "nope.py:Net", cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


@pytest.mark.toolchain
def test_concurrent_converts_of_one_model_do_not_corrupt_each_other(tmp_path):
    """Two converts into one folder at once: the lock serialises them, and every artifact
    left matches the manifest's hash."""
    import json

    from oakpipe.manifest import sha256_file

    args = [sys.executable, "-m", "oakpipe", "--quiet", "convert", "halve", "--input-shape", "1,3,64,64",
            "--no-cache", "--no-verify", "--out", str(tmp_path / "h")]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    manifest = json.loads((tmp_path / "h" / "manifest.json").read_text())
    assert manifest["complete"] is True
    for stage in manifest["stages"].values():
        for name, digest in stage["artifacts"].items():
            assert sha256_file(tmp_path / "h" / name) == digest
    assert not list((tmp_path / "h").glob(".*tmp*"))  # no temporary file left behind
