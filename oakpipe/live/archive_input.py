"""``oakpipe run MODEL.tar.xz``: run an NN Archive made by another tool (or by us).

An NN Archive is ``config.json`` plus a model file (see ``oakpipe.stages.archive``). This
module turns one into the same ``RunnableExport`` an export folder gives, so the pipeline,
backends and decoder do not know the difference:

* ``export.blob``: the archive's RVC2 blob, extracted (the device backend runs it);
* ``export.ir``: what the host backend compiles. A blob cannot run on the host (there is no
  MyriadX there), so this is the archive's ``.onnx`` or ``.xml``/``.bin`` (archives for
  other platforms carry those), wrapped so it takes the camera's U8 planar frame and applies
  the archive's own preprocessing, exactly as ``oakpipe.preprocessing`` defines it;
  a blob-only archive raises a one-line explanation instead, only when the host needs it.
* ``preprocessing``: the archive's contract relative to a BGR frame (``dai_type``
  ``RGB888p`` means the camera already swapped the channels), which the decoder inverts.

Our own archive inside an export folder is run as that export (its IR, manifest, checks).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import posixpath
import shutil
import tarfile
import tempfile
from functools import cached_property
from pathlib import Path

from oakpipe.blobfile import BlobPort
from oakpipe.errors import UserError
from oakpipe.live.runnable import RunnableExport
from oakpipe.manifest import replaced_atomically, sha256_file
from oakpipe.manifest_schema import BlobRecord, ExportManifest
from oakpipe.preprocessing import Preprocessing

#: What an archive may hold, in one place: a config is a few KiB, a MyriadX model well under 1 GiB.
MAX_CONFIG_BYTES = 1 << 20
MAX_MODEL_BYTES = 2 << 30
MAX_MEMBERS = 1000
#: The largest input side accepted (4K sensors give at most 4056 x 3040); bounds the frame buffers.
MAX_SIDE = 8192
BLOB_SUFFIXES = (".blob", ".superblob")
HOST_SUFFIXES = (".onnx", ".xml")
FRAME_TYPES = ("BGR888p", "RGB888p")
CONVERT_HINT = "make the archive again (e.g. with Luxonis modelconverter or oakpipe convert)"


def open_archive(path: Path) -> RunnableExport:
    """An NN Archive -> a RunnableExport; one-line UserErrors for anything unreadable.
    (``export_check.open_for_run`` runs our own archive as its export folder instead.)"""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such NN Archive", "give an export folder or a .tar.xz NN Archive")
    config, members = read_config(path)
    try:
        model = ArchiveModel.from_config(path, config, members)
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:  # a field of the wrong type
        raise UserError(f"{path.name}: config.json is malformed ({type(exc).__name__}: {exc})", CONVERT_HINT) from None
    check_with_depthai(path)
    return RunnableExport(model, model.preprocessing, model.width, model.height)


def own_export_folder(path: Path) -> Path | None:
    """The export folder when ``path`` is the archive an oakpipe export lists as its own."""
    manifest = path.parent / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        artifacts = json.loads(manifest.read_text())["stages"]["archive"]["artifacts"]
    except (ValueError, KeyError, TypeError):
        return None
    return path.parent if path.name in artifacts else None


def read_config(path: Path) -> tuple[dict, dict[str, tarfile.TarInfo]]:
    """(config.json parsed, the archive's regular files by normalised name), every limit checked.

    Only headers are read for the listing; config.json is read within its cap, and nothing
    else is read until a backend needs the one model file the config names.
    """
    try:
        with tarfile.open(path, "r:*") as tar:
            members = list_members(tar, path)
            if "config.json" not in members:
                raise UserError(f"{path.name} holds no config.json, so it is not an NN Archive", CONVERT_HINT)
            info = members["config.json"]
            if info.size > MAX_CONFIG_BYTES:
                raise UserError(f"{path.name}: config.json is {_size(info.size)}, more than the "
                                f"{_size(MAX_CONFIG_BYTES)} a config may be", CONVERT_HINT)
            handle = tar.extractfile(info)
            assert handle is not None
            config = json.loads(handle.read(MAX_CONFIG_BYTES + 1))
    except UserError:
        raise
    except (tarfile.TarError, OSError, EOFError) as exc:
        why = "not a tar archive, or truncated" if isinstance(exc, tarfile.ReadError) else str(exc)
        raise UserError(f"{path.name} is not a readable NN Archive (.tar.xz): {why}", CONVERT_HINT) from None
    except (ValueError, RecursionError) as exc:
        raise UserError(f"{path.name}: config.json is not valid JSON ({exc})", CONVERT_HINT) from None
    if not isinstance(config, dict):
        raise UserError(f"{path.name}: config.json is not a JSON object", CONVERT_HINT)
    return config, members


def list_members(tar: tarfile.TarFile, path: Path) -> dict[str, tarfile.TarInfo]:
    """Regular files by normalised name; refuses links, devices, traversal and oversized members.

    An NN Archive holds a config and model files, nothing else: anything that could write
    outside a folder or point elsewhere marks a hostile or broken archive, refused outright.
    """
    members: dict[str, tarfile.TarInfo] = {}
    for count, info in enumerate(tar, start=1):
        if count > MAX_MEMBERS:
            raise UserError(f"{path.name} holds more than {MAX_MEMBERS} members; an NN Archive holds a "
                            "config and a model", CONVERT_HINT)
        name = member_name(info.name, path)
        if info.issym() or info.islnk():
            raise UserError(f"{path.name}: member {name} is a link (to {info.linkname}); oakpipe reads no links "
                            "from an archive", CONVERT_HINT)
        if info.isdir():
            continue
        if not info.isfile():
            raise UserError(f"{path.name}: member {name} is not a regular file (a device or pipe)", CONVERT_HINT)
        if info.size > MAX_MODEL_BYTES:
            raise UserError(f"{path.name}: member {name} is {_size(info.size)}, more than the "
                            f"{_size(MAX_MODEL_BYTES)} a model may be", CONVERT_HINT)
        members[name] = info
    return members


def member_name(raw: str, archive: Path) -> str:
    """A member's name relative to the archive's root, or a UserError for absolute and ``..`` names."""
    name = raw.replace("\\", "/")
    normal = posixpath.normpath(name) if name else ""
    if name.startswith("/") or normal == ".." or normal.startswith("../") or "/../" in f"/{name}/":
        raise UserError(f"{archive.name}: member {raw!r} points outside the archive (absolute or ..)",
                        "this archive is unsafe: do not run it; " + CONVERT_HINT)
    return "" if normal == "." else normal


def _size(count: int) -> str:
    return f"{count / (1 << 30):.1f} GiB" if count >= 1 << 30 else f"{count / (1 << 20):.1f} MiB"


def field(config: dict, dotted: str, archive: Path):
    """config['a']['b'][0]... by a dotted name, or a UserError naming the missing field."""
    value = config
    for part in dotted.split("."):
        key = int(part) if part.isdigit() else part
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            raise UserError(f"{archive.name}: config.json lacks {dotted}", CONVERT_HINT) from None
    return value


def archive_preprocessing(pre: dict, archive: Path) -> tuple[Preprocessing, str]:
    """The input's ``preprocessing`` -> (contract relative to a BGR frame, camera frame type)."""
    dai_type = pre.get("dai_type") or "BGR888p"
    if dai_type not in FRAME_TYPES:
        raise UserError(f"{archive.name}: input dai_type {dai_type!r} is not one of {', '.join(FRAME_TYPES)}",
                        "oakpipe feeds planar colour frames")

    def three(name: str, default: float) -> tuple[float, float, float]:
        values = pre.get(name)
        values = [default] * 3 if values is None else values
        if not isinstance(values, list) or len(values) not in (1, 3):
            raise UserError(f"{archive.name}: preprocessing {name} {values!r} needs 1 or 3 numbers", CONVERT_HINT)
        return tuple(float(v) for v in values * (3 // len(values)))  # type: ignore[return-value]

    contract = Preprocessing.from_archive(three("mean", 0.0), three("scale", 1.0),
                                          bool(pre.get("reverse_channels") or False), dai_type)
    return contract, dai_type


class ArchiveModel:
    """What the pipeline reads from an ``Export``, for an NN Archive (name, blob, ir, manifest)."""

    def __init__(self, archive: Path, config: dict, members: dict[str, tarfile.TarInfo]) -> None:
        self.archive, self.config, self.members = archive, config, members
        self.folder = archive.parent
        self.name = str(field(config, "model.metadata.name", archive))
        self.model_path = member_name(str(field(config, "model.metadata.path", archive)), archive)
        first = field(config, "model.inputs.0", archive)
        shape = field(config, "model.inputs.0.shape", archive)
        layout = str(first.get("layout") or "NCHW").upper()
        if not (isinstance(shape, list) and len(shape) == 4 and layout in ("NCHW", "NHWC")):
            raise UserError(f"{archive.name}: input shape {shape} / layout {layout} is not one image "
                            "(4 dimensions, NCHW or NHWC)", CONVERT_HINT)
        if not field(config, "model.outputs", archive):
            raise UserError(f"{archive.name}: config.json lists no model.outputs", CONVERT_HINT)
        dims = dict(zip(layout, (int(d) for d in shape)))
        if dims["C"] != 3:
            raise UserError(f"{archive.name}: the input has {dims['C']} channels", "the camera feeds 3 (colour)")
        if not (0 < dims["H"] <= MAX_SIDE and 0 < dims["W"] <= MAX_SIDE):
            raise UserError(f"{archive.name}: the input is {dims['W']}x{dims['H']}; a camera frame is 1 to "
                            f"{MAX_SIDE} pixels a side", CONVERT_HINT)
        self.height, self.width, self.layout = dims["H"], dims["W"], layout
        self.input_shape = (1, 3, self.height, self.width)
        self.preprocessing, self.dai_type = archive_preprocessing(first.get("preprocessing") or {}, archive)
        for name in self.named_files:
            if name not in members:
                raise UserError(f"{archive.name}: config.json names {name} but the archive does not hold it",
                                CONVERT_HINT)
        self.output_names = [str(o.get("name", f"output{i}")) for i, o in enumerate(config["model"]["outputs"])]

    @classmethod
    def from_config(cls, archive: Path, config: dict, members: dict[str, tarfile.TarInfo]) -> "ArchiveModel":
        return cls(archive, config, members)

    # -- files ------------------------------------------------------------------------------
    @property
    def named_files(self) -> list[str]:
        """The members config.json names: its model, and an OpenVINO .xml's weights (.bin)."""
        if self.model_path.lower().endswith(".xml"):
            return [self.model_path, posixpath.splitext(self.model_path)[0] + ".bin"]
        return [self.model_path]

    @cached_property
    def _folder(self) -> Path:
        """A private temporary folder for the named members, removed at exit."""
        folder = Path(tempfile.mkdtemp(prefix="oakpipe-archive-"))
        atexit.register(shutil.rmtree, folder, True)
        return folder

    def _extracted(self, name: str) -> Path:
        """The named member ``name`` (and an .xml's .bin), streamed out of the archive under its caps."""
        for member in [n for n in self.named_files if n == name or name.lower().endswith(".xml")]:
            target = self._folder / posixpath.basename(member)
            if not target.exists():
                stream_member(self.archive, self.members[member], member, target)
        return self._folder / posixpath.basename(name)

    def _named(self, suffixes: tuple[str, ...]) -> str | None:
        return self.model_path if self.model_path.lower().endswith(suffixes) else None

    @property
    def blob(self) -> Path:
        """The RVC2 blob or superblob (the device backend's model)."""
        name = self._named(BLOB_SUFFIXES)
        if name is None:
            raise UserError(f"{self.archive.name} holds no RVC2 blob (its model is {self.model_path}), "
                            "so an OAK (RVC2) cannot run it",
                            "run it with --backend host, or convert the model for RVC2 (oakpipe convert)")
        return self._extracted(name)

    @cached_property
    def ir(self) -> Path:
        """An OpenVINO model for the host: U8 planar BGR frame in, the archive's preprocessing inside."""
        name = self._named(HOST_SUFFIXES)
        if name is None:
            raise UserError(f"{self.archive.name} holds only an RVC2 blob ({self.model_path}), which runs only on "
                            "an OAK's MyriadX, not on the host",
                            "attach an OAK (--backend device), or use an archive or export with an .onnx or "
                            "OpenVINO .xml/.bin")
        return host_model(self._extracted(name), self)

    @cached_property
    def record(self) -> ExportManifest:
        """What the device backend reads of an export's manifest (the blob's output names, the frame
        type), typed as an export's; read before the camera is opened, so an archive without a
        usable blob fails here."""
        from oakpipe.blobfile import read_blob

        blob = self.blob
        if blob.suffix == ".superblob":  # several blobs (one per SHAVE count): described by config.json
            names, nchw = self.output_names, None
        else:
            try:
                info = read_blob(blob)
            except UserError:
                raise
            except Exception as exc:  # a blob depthai cannot parse
                raise UserError(f"{self.archive.name}: its blob does not parse ({exc})", CONVERT_HINT) from None
            names = [p.name for p in info.outputs] or self.output_names
            nchw = info.inputs[0].nchw if info.inputs else None
        if nchw is not None and nchw != list(self.input_shape):
            raise UserError(f"{self.archive.name}: the blob takes {nchw} but config.json says "
                            f"{list(self.input_shape)}", CONVERT_HINT)
        return ExportManifest(self.name, "nn-archive", input_shape=self.input_shape, preprocessing=self.preprocessing,
                              blob=BlobRecord([BlobPort(n, [], "") for n in names]), dai_type=self.dai_type)


def stream_member(archive: Path, info: tarfile.TarInfo, name: str, target: Path) -> None:
    """Copy one regular member to ``target`` in chunks, never past ``MAX_MODEL_BYTES``."""
    try:
        with replaced_atomically(target) as temporary, tarfile.open(archive, "r:*") as tar, open(temporary, "wb") as out:
            handle = tar.extractfile(info)
            if handle is None:
                raise UserError(f"{archive.name}: member {name} is not a regular file", CONVERT_HINT)
            copied = 0
            while chunk := handle.read(1 << 20):
                copied += len(chunk)
                if copied > MAX_MODEL_BYTES:
                    raise UserError(f"{archive.name}: member {name} is more than the {_size(MAX_MODEL_BYTES)} "
                                    "a model may be", CONVERT_HINT)
                out.write(chunk)
    except (tarfile.TarError, EOFError) as exc:
        raise UserError(f"{archive.name}: {name} cannot be read ({exc or 'truncated'})", CONVERT_HINT) from None
    except OSError as exc:
        raise UserError(f"{archive.name}: cannot unpack {name} into {target.parent}: {exc.strerror or exc}",
                        "free some space there, or point TMPDIR at a disk with room") from None


def host_model(model: Path, archive: ArchiveModel) -> Path:
    """Wrap an ONNX/IR so it takes what the emulated camera sends (U8 planar BGR, 1x3xHxW).

    The steps are the contract's own (``Preprocessing.steps``): reverse the channels when
    it says so, subtract the mean, divide by the scale (in the model's channel order), then
    the layout the model wants. The model itself is unchanged.
    """
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    pre = archive.preprocessing
    try:
        network = ov.Core().read_model(str(model))
    except RuntimeError as exc:
        raise UserError(f"{archive.archive.name}: OpenVINO cannot read {model.name}: "
                        f"{str(exc).strip().splitlines()[0]}", CONVERT_HINT) from None
    if len(network.inputs) != 1:
        raise UserError(f"{model.name} has {len(network.inputs)} inputs", "the camera feeds exactly one image")
    ppp = PrePostProcessor(network)
    step = ppp.input()
    step.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NCHW")).set_shape(list(archive.input_shape))
    step.model().set_layout(ov.Layout(archive.layout))
    step.preprocess().convert_element_type(ov.Type.f32)
    add_contract_steps(step.preprocess(), pre)
    digest = hashlib.sha256((sha256_file(model) + json.dumps(pre.to_dict())).encode()).hexdigest()[:12]
    out = model.parent / f"{model.stem}_host_{digest}.xml"
    ov.save_model(ppp.build(), str(out), compress_to_fp16=False)
    return out


def add_contract_steps(preprocess, pre: Preprocessing) -> None:
    """OpenVINO ``PreProcessSteps`` for each step of the contract (the host emulator's half)."""
    for op, values in pre.steps():
        if op == "reverse":
            preprocess.reverse_channels()  # a BGR<->RGB swap: the only permutation steps() yields
        elif op == "subtract":
            preprocess.mean(list(values))
        else:
            preprocess.scale(list(values))


def check_with_depthai(path: Path) -> None:
    """depthai must open the archive too (what the device backend will hand it)."""
    from oakpipe.live.oak_devices import load_depthai

    dai = load_depthai()
    try:
        dai.NNArchive(str(path))
    except RuntimeError as exc:
        raise UserError(f"depthai cannot open {path.name}: {str(exc).strip().splitlines()[0]}", CONVERT_HINT) from None
