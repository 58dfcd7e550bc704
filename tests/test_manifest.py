import threading
import time

import pytest

from oakpipe.manifest import Manifest, export_lock, run_stage, sha256_file


def write(text):
    def body(paths):
        for path in paths.values():
            path.write_text(text)
        return {"text": text}

    return body


def test_stage_is_cached_until_its_key_or_artifact_changes(tmp_path):
    manifest = Manifest.load(tmp_path)
    record, cached = run_stage(manifest, "s", {"k": 1}, ["a.txt"], write("one"))
    assert not cached and (tmp_path / "a.txt").read_text() == "one"
    reloaded = Manifest.load(tmp_path)
    _, cached = run_stage(reloaded, "s", {"k": 1}, ["a.txt"], write("two"))
    assert cached and (tmp_path / "a.txt").read_text() == "one"
    _, cached = run_stage(reloaded, "s", {"k": 2}, ["a.txt"], write("two"))
    assert not cached and (tmp_path / "a.txt").read_text() == "two"
    (tmp_path / "a.txt").write_text("tampered")
    _, cached = run_stage(reloaded, "s", {"k": 2}, ["a.txt"], write("three"))
    assert not cached and sha256_file(tmp_path / "a.txt") == reloaded.stages["s"]["artifacts"]["a.txt"]


def test_failed_stage_leaves_no_artifact_and_marks_export_incomplete(tmp_path):
    manifest = Manifest.load(tmp_path)

    def half_then_fail(paths):
        paths["b.bin"].write_bytes(b"half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        run_stage(manifest, "s", {}, ["b.bin"], half_then_fail)
    assert not (tmp_path / "b.bin").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
    assert Manifest.load(tmp_path).data["complete"] is False


def test_no_cache_forces_a_rerun(tmp_path):
    manifest = Manifest.load(tmp_path)
    run_stage(manifest, "s", {}, ["a"], write("x"))
    _, cached = run_stage(manifest, "s", {}, ["a"], write("y"), use_cache=False)
    assert not cached and (tmp_path / "a").read_text() == "y"


def test_export_lock_serialises_writers(tmp_path):
    inside, overlaps = [], []

    def worker():
        with export_lock(tmp_path):
            if inside:
                overlaps.append(True)
            inside.append(1)
            threading.Event().wait(0.05)
            inside.pop()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not overlaps


def test_an_untouched_artifact_is_not_hashed_again_but_any_rewrite_is_caught(tmp_path, monkeypatch):
    """The stamp (size, mtime, ctime, inode) stands in for the digest only while the file is
    untouched: a same-size rewrite with its mtime set back still changes its ctime."""
    import os

    from oakpipe import manifest as manifest_module

    run_stage(Manifest.load(tmp_path), "s", {"k": 1}, ["a.txt"], write("one"))
    hashed = []
    real = manifest_module.sha256_file
    monkeypatch.setattr(manifest_module, "sha256_file", lambda p: hashed.append(p) or real(p))
    _, cached = run_stage(Manifest.load(tmp_path), "s", {"k": 1}, ["a.txt"], write("two"))
    assert cached and hashed == []
    path = tmp_path / "a.txt"
    before = path.stat()
    time.sleep(0.05)  # file times come from a coarse kernel clock (ticks of a few ms): let it tick
    path.write_text("owt")  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    _, cached = run_stage(Manifest.load(tmp_path), "s", {"k": 1}, ["a.txt"], write("two"))
    assert not cached and path.read_text() == "two"


def test_replaced_atomically_puts_a_file_in_place_only_when_its_block_ends_well(tmp_path):
    from oakpipe.manifest import replaced_atomically

    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), replaced_atomically(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed half way")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    with replaced_atomically(target) as tmp:
        tmp.write_bytes(b"new")
        assert target.read_bytes() == b"old"  # nothing under the final name until the end
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
