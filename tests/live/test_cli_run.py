"""``oakpipe run`` and ``oakpipe deploy`` through the command's entry point."""

from __future__ import annotations

import cv2

from oakpipe.cli import main
from tests.live.conftest import write_video


def test_run_on_a_video_records_and_summarises(halve_dir, tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    write_video(clip, 6)
    record = tmp_path / "out.mp4"
    code = main(["--quiet", "run", str(halve_dir), "--backend", "host", "--source", str(clip),
                 "--display", "none", "--record", str(record), "--strip", str(tmp_path / "s.png")])
    out = capsys.readouterr().out
    assert code == 0 and "6 frames in" in out and "FPS mean" in out and "ms mean latency" in out
    capture, count = cv2.VideoCapture(str(record)), 0
    while capture.read()[0]:
        count += 1
    assert count == 6


def test_deploy_converts_cached_then_runs(halve_dir, capsys):
    code = main(["deploy", "halve", "--out", str(halve_dir), "--backend", "auto", "--frames", "3", "--display", "none"])
    captured = capsys.readouterr()
    assert code == 0 and "all cached" in captured.err and "3 frames in" in captured.out
    assert "backend    host (no OAK attached" in captured.err or "backend    device" in captured.err


def test_bad_input_is_one_line_and_nonzero(halve_dir, tmp_path, capsys):
    cases = [
        (["run", str(tmp_path / "none")], 2, "no such export folder"),
        (["run", str(halve_dir), "--record", str(tmp_path / "no" / "x.mp4")], 2, "does not exist"),
        (["run", str(halve_dir), "--backend", "host", "--source", str(tmp_path)], 2, "holds no images"),
        (["run", str(halve_dir), "--frames", "0"], 2, "at least 1"),
    ]
    from tests.conftest import oak_attached

    if not oak_attached():
        cases.append((["run", str(halve_dir), "--backend", "device"], 6, "no OAK camera is attached"))
    for argv, code, phrase in cases:
        assert main(argv) == code, argv
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.startswith("oakpipe:")]
        assert len(lines) == 1 and phrase in lines[0] and "Traceback" not in err, err
