"""``--display web``: the live side-by-side view in a browser, as MJPEG, standard library only.

A ``ThreadingHTTPServer`` runs in a daemon thread and serves three things:

* ``/``            a small HTML page: the model name, an ``<img>`` on the stream, a stats line;
* ``/stream.mjpg`` ``multipart/x-mixed-replace`` JPEG parts (what browsers show as video);
* ``/frame.jpg``   the latest frame once, and ``/stats`` as JSON (the page polls it).

The pipeline only hands the newest view to a one-slot buffer and notifies a condition
variable; it never waits for a client. Each client's thread sends whatever frame is newest
when it is ready for the next one, so a slow client simply skips frames. A frame is
JPEG-encoded once, by the first client that needs it, not by the pipeline.

It binds 127.0.0.1 unless ``--host`` says otherwise: the stream has no password.
"""

from __future__ import annotations

import html
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from oakpipe.errors import UserError
from oakpipe.live.result import rolling_fps
from oakpipe.progress import Progress

DEFAULT_HOST = "127.0.0.1"
#: The usual "alternative HTTP" port: easy to remember and type; --port 0 takes any free one.
DEFAULT_PORT = 8080
BOUNDARY = "oakpipeframe"
JPEG_QUALITY = 85
#: A client that cannot take a part within this long is dropped (its thread ends).
SEND_TIMEOUT_S = 10.0

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>oakpipe: {name}</title>
<style>body{{background:#111;color:#ddd;font:14px sans-serif;margin:12px}}
img{{max-width:100%;image-rendering:pixelated;display:block;margin:8px 0}}</style></head>
<body><div><b>oakpipe run</b> &middot; model <b id="model">{name}</b> &middot; camera | model output</div>
<img id="view" src="/stream.mjpg" alt="live view">
<div id="stats">waiting for frames...</div>
<script>
async function poll() {{
  try {{
    const s = await (await fetch('/stats', {{cache: 'no-store'}})).json();
    document.getElementById('stats').textContent =
      `frame ${{s.frames}} \u00b7 ${{s.fps.toFixed(1)}} FPS \u00b7 ${{s.width}}x${{s.height}} \u00b7 ` +
      `${{s.clients}} viewer(s)` + (s.running ? '' : ' \u00b7 run ended');
  }} catch (e) {{ document.getElementById('stats').textContent = 'run ended'; }}
}}
setInterval(poll, 1000); poll();
</script></body></html>
"""


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def port_in_use_error(host: str, port: int, exc: OSError) -> UserError:
    other = port + 1 if 0 < port < 65535 else 8081
    return UserError(f"--port {port}: cannot serve on {host}:{port} ({exc.strerror or exc})",
                     f"another program uses it: pick another, e.g. --port {other}, or --port 0 for any free port")


def check_bindable(host: str, port: int) -> None:
    """Fail now (before a compile or a camera open) if the address cannot be bound."""
    if port == 0:
        return
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as exc:
        raise UserError(f"--host {host}: not an address of this machine ({exc.strerror})",
                        "use --host 127.0.0.1 (default) or --host 0.0.0.0 for every interface") from None
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as http.server does
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise port_in_use_error(host, port, exc) from None


class _LatestFrame:
    """One-slot buffer: the newest view, its sequence number, its JPEG once someone asked."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.view: np.ndarray | None = None
        self.seq = 0
        self.jpeg: bytes | None = None
        self.jpeg_seq = -1
        self.running = True
        self.clients = 0
        self.times: list[float] = []

    def put(self, view: np.ndarray) -> None:
        with self.condition:
            self.view, self.seq = view, self.seq + 1
            rolling_fps(self.times, time.perf_counter())
            self.condition.notify_all()

    def stop(self) -> None:
        with self.condition:
            self.running = False
            self.condition.notify_all()

    def wait_newer(self, seen: int, timeout: float = 1.0) -> tuple[int, bytes | None]:
        """-> (seq, jpeg) of a frame newer than ``seen``; (seen, None) on timeout or stop."""
        with self.condition:
            self.condition.wait_for(lambda: self.seq > seen or not self.running, timeout)
            if self.seq <= seen or self.view is None:
                return seen, None
            seq, view = self.seq, self.view
            if self.jpeg_seq == seq:
                return seq, self.jpeg
        jpeg = encode_jpeg(view)  # outside the lock: the pipeline's put() never waits on it
        with self.condition:
            if seq > self.jpeg_seq:
                self.jpeg, self.jpeg_seq = jpeg, seq
        return seq, jpeg

    def stats(self) -> dict:
        with self.condition:
            fps = rolling_fps(self.times)
            h, w = self.view.shape[:2] if self.view is not None else (0, 0)
            return {"frames": self.seq, "fps": fps, "width": w, "height": h, "clients": self.clients,
                    "running": self.running}


def encode_jpeg(view: np.ndarray) -> bytes:
    import cv2

    ok, data = cv2.imencode(".jpg", view, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return data.tobytes()


def _handler(latest: _LatestFrame, name: str) -> type[BaseHTTPRequestHandler]:
    page = PAGE.format(name=html.escape(name)).encode()

    class Handler(BaseHTTPRequestHandler):
        server_version = "oakpipe"
        timeout = SEND_TIMEOUT_S  # socket timeout: a stuck client's thread ends

        def log_message(self, format, *args) -> None:  # noqa: A002 - no access log on the terminal
            pass

        def _send(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            try:
                if path in ("/", "/index.html"):
                    self._send(page, "text/html; charset=utf-8")
                elif path == "/stats":
                    self._send(json.dumps({"model": name, **latest.stats()}).encode(), "application/json")
                elif path == "/frame.jpg":
                    _, jpeg = latest.wait_newer(-1 if latest.seq else 0, timeout=5.0)
                    if jpeg is None:
                        self.send_error(503, "no frame yet")
                    else:
                        self._send(jpeg, "image/jpeg")
                elif path == "/stream.mjpg":
                    self._stream()
                else:
                    self.send_error(404)
            except (BrokenPipeError, ConnectionResetError, socket.timeout, TimeoutError):
                pass  # the client went away or stalled: only its own thread ends

        def _stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            with latest.condition:
                latest.clients += 1
            try:
                seen = 0
                while latest.running:
                    seen, jpeg = latest.wait_newer(seen)
                    if jpeg is None:
                        continue
                    self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                     f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                    self.wfile.flush()
            finally:
                with latest.condition:
                    latest.clients -= 1

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class WebView:
    """A sink like ``Window``: ``show(view) -> True`` (it never stops the run), ``close()``."""

    def __init__(self, host: str | None = None, port: int | None = None, name: str = "oakpipe",
                 announce=None) -> None:
        self.host = host or DEFAULT_HOST
        port = DEFAULT_PORT if port is None else port
        self.latest = _LatestFrame()
        server_class: type[_Server] = _Server
        if ":" in self.host:  # an IPv6 address
            server_class = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})  # type: ignore[assignment]
        try:
            self.server = server_class((self.host, port), _handler(self.latest, name))
        except OSError as exc:
            raise port_in_use_error(self.host, port, exc) from None
        self.port = self.server.server_address[1]
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{shown}:{self.port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="oakpipe-web", daemon=True)
        self.thread.start()
        say = announce or Progress().say
        say(f"  web        serving the live view at {self.url} (Ctrl-C to stop)")
        if not is_loopback(self.host):
            say(f"  web        note: {self.host} is not loopback; anyone who can reach this machine "
                f"can watch the stream (no password)")

    def show(self, view: np.ndarray) -> bool:
        self.latest.put(view)
        return True

    def close(self) -> None:
        self.latest.stop()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=2.0)
