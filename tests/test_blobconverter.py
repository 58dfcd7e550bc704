"""``--compiler blobconverter`` against a stand-in server on 127.0.0.1; no real network.

The stand-in speaks the service's protocol as the blobconverter package (1.4.3) and the
service's source define it: ``POST /compile?version=..&no_cache=..`` with form fields
(name, myriad_shaves, myriad_params_advanced, data_type, download_ir, zoo_type) and two
multipart files (``config``: model.yml, and the model under its own file name); the reply
is the blob's bytes, or 400 with JSON {message, stderr, stdout} when a command fails.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

pytest.importorskip("blobconverter")

from oakpipe.compilers import blobconverter_client as client  # noqa: E402
from oakpipe.errors import ToolchainError, UnsupportedModelError, UserError  # noqa: E402


@dataclass
class Received:
    path: str
    query: dict[str, list[str]]
    form: dict[str, str]
    files: dict[str, tuple[str, bytes]]  # form name -> (file name, bytes)


@dataclass
class StandIn:
    """What the server answers (status, body) and everything it was sent."""

    url: str = ""
    status: int = 200
    body: bytes = b""
    requests: list[Received] = field(default_factory=list)


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    form, files = {}, {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        payload = part.get_payload(decode=True)
        if filename is None:
            form[name] = payload.decode()
        else:
            files[name] = (filename, payload)
    return form, files


@pytest.fixture
def server():
    state = StandIn()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            form, files = parse_multipart(self.headers["Content-Type"], body)
            parts = urlsplit(self.path)
            state.requests.append(Received(parts.path, parse_qs(parts.query), form, files))
            self.send_response(state.status)
            self.send_header("Content-Length", str(len(state.body)))
            self.send_header("X-HASH", "stand-in")
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def fake_blob(size: int = 128) -> bytes:
    """Passes blobconverter.is_valid_blob (magic 9709 at 52, size at 56); depthai would refuse it."""
    data = bytearray(size)
    data[52:60] = struct.pack("<II", 9709, size)
    return bytes(data)


@pytest.fixture
def onnx_file(tmp_path) -> Path:
    from oakpipe.doctor import write_one_op_onnx

    return write_one_op_onnx(tmp_path / "net_device.onnx")


def test_request_matches_the_service_protocol_and_the_offline_contract(server, onnx_file, tmp_path):
    server.body = fake_blob()
    said = []
    result = client.compile_with_blobconverter(onnx_file, tmp_path / "out.blob", 6, url=server.url,
                                               say=lambda line: said.append((line, len(server.requests))))
    assert result["ok"] and result["server"] == server.url and result["request_hash"] == "stand-in"
    assert (tmp_path / "out.blob").read_bytes() == server.body
    [(warning, requests_before)] = said
    assert requests_before == 0 and "uploads net_device.onnx" in warning and server.url in warning
    [got] = server.requests
    assert got.path == "/compile"
    assert got.query == {"version": ["2021.4"], "no_cache": ["False"]}
    assert got.form == {"myriad_shaves": "6", "myriad_params_advanced": "-ip U8 -op FP16", "data_type": "FP16",
                        "download_ir": "False", "zoo_type": "intel", "name": "net_device"}
    assert got.files["net_device.onnx"] == ("net_device.onnx", onnx_file.read_bytes())
    config = yaml.safe_load(got.files["config"][1])
    assert config["framework"] == "onnx"
    assert config["model_optimizer_args"] == ["--data_type=FP16", "--input_model=$dl_dir/FP16/net_device.onnx"]
    assert config["files"] == [{"name": "FP16/net_device.onnx",
                                "source": {"$type": "http", "url": "$REQUEST/net_device.onnx"}}]


def test_ir_input_uploads_xml_and_bin_without_model_optimizer(server, tmp_path):
    (tmp_path / "m.xml").write_text("<net/>")
    (tmp_path / "m.bin").write_bytes(b"\0" * 8)
    server.body = fake_blob()
    client.compile_with_blobconverter(tmp_path / "m.xml", tmp_path / "m.blob", 4, url=server.url, say=print)
    [got] = server.requests
    assert set(got.files) == {"config", "m.xml", "m.bin"}
    config = yaml.safe_load(got.files["config"][1])
    assert config["framework"] == "dldt" and "model_optimizer_args" not in config


def test_compiler_rejection_reaches_the_user_like_the_offline_one(server, onnx_file, tmp_path, monkeypatch):
    from oakpipe.stages.blob import build_blob

    server.status = 400
    server.body = json.dumps({"message": "Command failed with exit code 1", "exit_code": 1, "stdout": "",
                              "stderr": "[ GENERAL_ERROR ] Unsupported layer \"pad\""}).encode()
    monkeypatch.setenv(client.URL_ENV, server.url)
    with pytest.raises(UnsupportedModelError) as caught:
        build_blob(onnx_file, tmp_path / "x.blob", 6, compiler="blobconverter")
    assert 'Unsupported layer "pad"' in caught.value.one_line()


def test_server_errors_and_non_blobs_are_toolchain_errors(server, onnx_file, tmp_path):
    server.status, server.body = 503, b"down for maintenance"
    with pytest.raises(ToolchainError, match="answered 503: down for maintenance"):
        client.compile_with_blobconverter(onnx_file, tmp_path / "x.blob", 6, url=server.url, say=print)
    server.status, server.body = 200, b"<html>not a blob</html>"
    with pytest.raises(ToolchainError, match="not a blob"):
        client.compile_with_blobconverter(onnx_file, tmp_path / "x.blob", 6, url=server.url, say=print)


def test_unreachable_server(onnx_file, tmp_path):
    with socket.socket() as probe:  # a free port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ToolchainError, match="cannot reach the blobconverter server"):
        client.compile_with_blobconverter(onnx_file, tmp_path / "x.blob", 6, url=f"http://127.0.0.1:{port}",
                                          say=print)


def test_more_than_8_shaves_is_refused_before_uploading(server, onnx_file, tmp_path):
    with pytest.raises(UserError, match="two streams of 5"):
        client.compile_with_blobconverter(onnx_file, tmp_path / "x.blob", 10, url=server.url, say=print)
    assert server.requests == []


def test_compiler_option_is_validated():
    from oakpipe.cli import build_parser, convert_options
    from oakpipe.options import ConvertOptions

    assert convert_options(build_parser().parse_args(["convert", "halve"])).compiler == "offline"
    args = build_parser().parse_args(["deploy", "halve", "--compiler", "blobconverter"])
    assert convert_options(args).compiler == "blobconverter"
    with pytest.raises(UserError, match="--compiler 'cloud' is unknown"):
        ConvertOptions(model="halve", compiler="cloud")


@pytest.mark.toolchain
def test_convert_with_blobconverter_checks_and_records_the_blob(server, halve_export, tmp_path, monkeypatch,
                                                                capsys):
    """The stand-in returns the offline compiler's blob for the same graph: it is stamped,
    read and checked like an offline one, and the manifest says who compiled it."""
    from oakpipe.cli import main
    from oakpipe.convert import Export

    server.body = halve_export.blob.read_bytes()
    monkeypatch.setenv(client.URL_ENV, server.url)
    out = tmp_path / "web"
    assert main(["convert", "halve", "--out", str(out), "--compiler", "blobconverter", "--no-verify"]) == 0
    err = capsys.readouterr().err
    assert "warning: --compiler blobconverter uploads halve_device.onnx" in err
    [got] = server.requests
    export = Export.open(out)
    assert got.files["halve_device.onnx"][1] == export.device_onnx.read_bytes()
    assert got.form["myriad_shaves"] == "6"
    stage = export.manifest["stages"]["blob"]
    assert stage["info"]["compiled_by"] == "blobconverter" and stage["info"]["server"] == server.url
    assert stage["info"]["blob"]["inputs"][0]["data_type"] == "U8F"
    assert export.manifest["options"]["compiler"] == "blobconverter"
    assert halve_export.manifest["stages"]["blob"]["info"]["compiled_by"] == "offline"
    # A second convert is cached: no second upload.
    assert main(["convert", "halve", "--out", str(out), "--compiler", "blobconverter", "--no-verify"]) == 0
    assert len(server.requests) == 1


@pytest.mark.toolchain
def test_default_compiler_contacts_no_server(server, tmp_path, monkeypatch):
    from oakpipe import ConvertOptions, convert

    def no_upload(*args, **kwargs):
        raise AssertionError("the web compiler was called without --compiler blobconverter")

    connects = []
    real_connect = socket.socket.connect

    def record_connect(self, address):
        connects.append(address)
        return real_connect(self, address)

    monkeypatch.setenv(client.URL_ENV, server.url)
    monkeypatch.setattr(client, "compile_with_blobconverter", no_upload)
    monkeypatch.setattr(socket.socket, "connect", record_connect)
    convert(ConvertOptions(model="halve", out=tmp_path / "offline", verify=False))
    assert server.requests == [] and [a for a in connects if isinstance(a, tuple)] == []
