"""``--display web``: the MJPEG stream over plain HTTP, the page in headless Chromium, and errors.

All traffic is to 127.0.0.1. The run goes in a thread and is stopped the way Ctrl-C stops
it (a KeyboardInterrupt inside the frame loop), so an endless source is exercised as such.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
import urllib.request

import cv2
import numpy as np
import pytest

from oakpipe.errors import UserError
from oakpipe.live import RunOptions, run_export, web
from oakpipe.live.web import BOUNDARY


class LiveRun:
    """run_export with --display web --port 0 in a thread; ``url`` once it serves."""

    def __init__(self, export, monkeypatch, fps: float = 20.0) -> None:
        self.servers: list[web.WebView] = []
        self.stop = threading.Event()
        self.frames = 0
        self.error: BaseException | None = None
        self.summary = None
        servers = self.servers

        class Recorded(web.WebView):
            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, **kwargs)
                servers.append(self)

        monkeypatch.setattr(web, "WebView", Recorded)
        options = RunOptions(backend="host", display="web", port=0, fps=fps)  # sample: endless

        def on_frame(item, picture) -> None:
            self.frames += 1
            if self.stop.is_set():
                raise KeyboardInterrupt  # what Ctrl-C does

        def target() -> None:
            try:
                self.summary = run_export(export, options, on_frame=on_frame)
            except BaseException as exc:  # reported by the test
                self.error = exc

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.servers and time.monotonic() < deadline and self.thread.is_alive():
            time.sleep(0.02)
        assert self.servers, f"the web view never started: {self.error!r}"
        self.url = self.servers[0].url

    def finish(self):
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the run did not stop"
        if self.error is not None:
            raise self.error
        return self.summary


def read_parts(url: str, count: int, skip: int = 0) -> list[bytes]:
    """The JPEG bodies of ``count`` multipart parts of the MJPEG stream (after ``skip`` parts)."""
    parts = []
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"] == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
        while len(parts) < count + skip:
            line = response.readline()
            if not line.strip():
                continue
            assert line.strip() == f"--{BOUNDARY}".encode(), line
            headers = {}
            while (line := response.readline().strip()):
                key, value = line.decode().split(":", 1)
                headers[key.strip().lower()] = value.strip()
            assert headers["content-type"] == "image/jpeg"
            parts.append(response.read(int(headers["content-length"])))
    return parts[skip:]


def test_mjpeg_stream_sends_changing_frames_of_the_view(halve_dir, monkeypatch, capfd):
    run = LiveRun(halve_dir, monkeypatch)
    try:
        assert run.url.startswith("http://127.0.0.1:") and not run.url.endswith(":0/")
        page = urllib.request.urlopen(run.url, timeout=5).read().decode()
        assert '<img id="view" src="/stream.mjpg"' in page and "halve" in page
        first, second = read_parts(run.url + "stream.mjpg", 2, skip=1)
        stats = urllib.request.urlopen(run.url + "stats", timeout=5).read().decode()
    finally:
        summary = run.finish()
    images = [cv2.imdecode(np.frombuffer(p, np.uint8), cv2.IMREAD_COLOR) for p in (first, second)]
    # halve is 256x256: camera | output side by side, 512x256 (already >= 240 high, no upscale)
    assert all(im is not None and im.shape == (256, 512, 3) for im in images)
    assert np.abs(images[0].astype(int) - images[1].astype(int)).mean() > 0.5  # the scene moves
    assert '"model": "halve"' in stats
    assert summary.stopped_by == "interrupted (Ctrl-C)" and summary.frames >= 2
    assert f"serving the live view at {run.url}" in capfd.readouterr().err


def test_page_in_headless_chromium_shows_changing_frames(halve_dir, monkeypatch, tmp_path):
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("chromium is not installed (scripts/install_test_deps.sh installs it)")
    run = LiveRun(halve_dir, monkeypatch)
    try:
        shots = []
        for i in range(2):
            shot = tmp_path / f"shot{i}.png"
            subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                            "--no-first-run", "--disable-background-networking", "--disable-component-update",
                            "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                            "--window-size=800,600", "--virtual-time-budget=1500", run.url],
                           check=True, capture_output=True, timeout=30)
            shots.append(cv2.imread(str(shot)))
    finally:
        run.finish()
    assert all(s is not None and s.shape == (600, 800, 3) for s in shots)
    # the <img> sits below a line of text; the view is 512x256 at (12, 36) or so: compare that area
    views = [s[40:290, 12:520].astype(int) for s in shots]
    assert all(v.std() > 20 for v in views), "no picture on the page"
    assert np.abs(views[0] - views[1]).mean() > 0.5, "the frames did not change between the screenshots"


def test_busy_port_is_one_line_naming_it():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UserError) as info:
            RunOptions(backend="host", display="web", port=port)
    line = info.value.one_line()
    assert f"--port {port}" in line and "--port 0" in line and "\n" not in line


def test_port_and_host_need_display_web():
    with pytest.raises(UserError, match="only apply to --display web"):
        RunOptions(display="none", port=8080)
    with pytest.raises(UserError, match="outside 0..65535"):
        RunOptions(display="web", port=70000)


def test_a_slow_client_does_not_hold_the_pipeline():
    view = web.WebView(port=0, name="t", announce=lambda text: None)
    try:
        slow = socket.create_connection(("127.0.0.1", view.port))  # asks for the stream, never reads
        slow.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
        frame = np.random.default_rng(0).integers(0, 255, (480, 1280, 3), np.uint8)  # ~1 MB JPEGs
        started = time.perf_counter()
        for i in range(200):
            frame[0, 0, 0] = i
            assert view.show(frame)
        assert time.perf_counter() - started < 1.0  # show() only swaps a reference
        slow.close()
    finally:
        view.close()
