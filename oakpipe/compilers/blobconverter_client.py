"""``--compiler blobconverter``: compile the device graph on Luxonis' web service, by request.

Why offer it: the offline compiler needs an x86-64 Linux machine that can run CPython
3.8/3.9 (``oakpipe toolchain install``); on a Mac or an ARM board the web service is the
only way to a blob. Why it is opt-in: it uploads the model to someone else's server.
Nothing here runs unless ``--compiler blobconverter`` was given.

We speak the service's protocol with ``requests`` and build the model description with
the ``blobconverter`` package's own ``ConfigBuilder``, rather than calling
``blobconverter.from_onnx``, because that function (1.4.3): first GETs a precompiled blob
from a hard-coded S3 bucket whatever server URL is set; keeps a cache under
``~/.cache/blobconverter`` that returns an old blob by file name; applies mean 127.5 /
scale 255 unless told otherwise; and prints the server's 400 error before raising a bare
HTTPError. Our device graph already holds the preprocessing, so the Model Optimizer gets
no mean/scale, and the compile step gets ``-ip U8 -op FP16``: the same blob contract as
the offline compiler (U8 input, FP16 output), checked the same way afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlencode

from oakpipe.errors import ToolchainError, UserError
from oakpipe.progress import Progress

DEFAULT_URL = "https://blobconverter.luxonis.com"
URL_ENV = "OAKPIPE_BLOBCONVERTER_URL"  # a self-hosted blobconverter, or a test's stand-in
VERSION = "2021.4"  # the last OpenVINO with a MyriadX (RVC2) compiler; depthai reads it from the blob
DATA_TYPE = "FP16"
#: compile_tool flags: the camera's U8 frame in, FP16 out (what oakpipe's offline blobs have).
COMPILE_PARAMS = ["-ip U8", "-op FP16"]
#: Model Optimizer flags beyond --data_type/--input_model: none. Mean, scale and channel
#: order are already nodes of the device graph; blobconverter's defaults would add them twice.
OPTIMIZER_PARAMS: list[str] = []
MAX_SHAVES = 8  # the service compiles more as 2 streams of half as many (a different blob)
TIMEOUT = (15, 900)  # connect, read: the service queues compiles and can be slow


def server_url() -> str:
    return os.environ.get(URL_ENV, DEFAULT_URL).rstrip("/")


def warn_upload(graph: Path, url: str, say: Callable[[str], None]) -> None:
    size = sum(graph.with_suffix(s).stat().st_size for s in model_suffixes(graph)) / 1e6
    say(f"oakpipe: warning: --compiler blobconverter uploads {graph.name} ({size:.1f} MB) "
        f"to Luxonis' blobconverter server {url} to compile it")


def compile_with_blobconverter(graph: Path, blob_path: Path, shaves: int, url: str | None = None,
                               say: Callable[[str], None] | None = None) -> dict:
    """Upload ``graph`` (the device ONNX, or an IR .xml with its .bin), write the blob to ``blob_path``.

    Returns a result dict shaped like ``oakpipe.toolchain.compile_onnx_to_blob``'s, so the
    blob stage handles both compilers alike: ``ok`` False carries the compiler's message.
    """
    if shaves > MAX_SHAVES:
        raise UserError(f"--shaves {shaves} with --compiler blobconverter: the service compiles more than "
                        f"{MAX_SHAVES} SHAVEs as two streams of {shaves // 2}", "use --shaves 8 or fewer, "
                        "or the offline compiler")
    try:
        import blobconverter
        import requests
    except ImportError:
        raise ToolchainError("--compiler blobconverter needs the blobconverter package",
                             "pip install blobconverter (or use the offline compiler)") from None
    url = (url or server_url()).rstrip("/")
    warn_upload(graph, url, say or Progress().say)
    with tempfile.TemporaryDirectory(prefix="oakpipe-blobconverter-") as tmp:
        name = upload_name(graph)
        models = [Path(tmp) / f"{name}{suffix}" for suffix in model_suffixes(graph)]
        for copy in models:
            shutil.copyfile(graph.with_suffix(copy.suffix), copy)
        config = model_config(blobconverter, models)
        try:
            response = post(requests, url, name, shaves, config, models)
        finally:
            os.unlink(config)
    if response.status_code == 400:
        return {"ok": False, "phase": "compile", "message": server_message(response)}
    if response.status_code != 200:
        raise ToolchainError(f"the blobconverter server at {url} answered {response.status_code}: "
                             f"{response.text[:200].strip()}", "try again later, or use the offline compiler")
    blob_path.write_bytes(response.content)
    if not blobconverter.is_valid_blob(blob_path):
        raise ToolchainError(f"the blobconverter server at {url} sent something that is not a blob "
                             f"({len(response.content)} bytes)", "try again later, or use the offline compiler")
    return {"ok": True, "openvino_version": f"{VERSION} (blobconverter)", "server": url,
            "request_hash": response.headers.get("X-HASH")}


def upload_name(graph: Path) -> str:
    """blobconverter refuses file names with more than one '.' or any '='."""
    return graph.stem.replace(".", "_").replace("=", "_") or "model"


def model_suffixes(graph: Path) -> list[str]:
    """An ONNX file goes alone; an IR (a chain that started at one) goes as .xml and .bin."""
    return [".xml", ".bin"] if graph.suffix.lower() == ".xml" else [".onnx"]


def model_config(blobconverter, models: list[Path]) -> str:
    """The service's model.yml, built by the package itself (its format is the package's).

    The service names the IR it compiles ``{name}.xml``: the uploaded files keep that stem.
    """
    builder = blobconverter.ConfigBuilder(precision=DATA_TYPE).task_type("detection")
    if models[0].suffix == ".onnx":
        builder = builder.framework("onnx").model_optimizer_args(
            OPTIMIZER_PARAMS + [f"--data_type={DATA_TYPE}", f"--input_model=$dl_dir/{DATA_TYPE}/{models[0].name}"])
    else:
        builder = builder.framework("dldt")  # an IR already: no Model Optimizer run
    for model in models:
        builder = builder.with_file(name=model.name, path=model)
    return builder.build()


def post(requests, url: str, name: str, shaves: int, config: str, models: list[Path]):
    """POST /compile as ``blobconverter.compile_blob`` does: query, form fields, the files."""
    query = urlencode({"version": VERSION, "no_cache": False})
    form = {"myriad_shaves": str(shaves), "myriad_params_advanced": " ".join(COMPILE_PARAMS),
            "data_type": DATA_TYPE, "download_ir": False, "zoo_type": "intel", "name": name}
    with ExitStack() as stack:
        files = {"config": stack.enter_context(open(config, "rb"))}
        files.update({m.name: stack.enter_context(open(m, "rb")) for m in models})
        try:
            return requests.post(f"{url}/compile?{query}", data=form, files=files, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise ToolchainError(f"cannot reach the blobconverter server at {url}: {type(exc).__name__}",
                                 "check the network (or OAKPIPE_BLOBCONVERTER_URL), or use the offline compiler"
                                 ) from None


def server_message(response) -> str:
    """A 400 carries JSON {message, stderr, stdout}: the compiler's own words are in stderr."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:600]
    if not isinstance(data, dict):
        return str(data)[:600]
    return " ".join(str(data.get(k) or "") for k in ("stderr", "message")).strip()[:600] or str(data)[:600]
