"""``oakpipe doctor``: is this machine ready to convert, run and show a model on an OAK?

The problems users hit before their first frame are about the machine, not the model: a
missing compiler, a camera the user may not open (udev), a headless OpenCV, telemetry
left on. Each check here is a pure-ish function that returns one ``Row`` (name, status,
detail, what to do), so tests can feed it fake inputs and the CLI only prints. Nothing
here fails loudly: a check that cannot run says so in its row.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from oakpipe.extras import CONVERT_INSTALL, CONVERT_MODULES, is_installed
from oakpipe.versions import version_of

OK, WARN, FAIL = "ok", "warn", "fail"
MOVIDIUS_VENDOR = "03e7"  # Intel Movidius / Luxonis: every RVC2 OAK, booted or not
USB_DEVICES = Path("/sys/bus/usb/devices")
#: The packages oakpipe imports, and what each is for (the detail when it is missing).
PACKAGES = {"torch": "export", "onnx": "graphs", "onnxruntime": "verify", "openvino": "IR stage",
            "depthai": "camera and blob parsing"}


@dataclass(frozen=True)
class Row:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""


def python_row(version: tuple[int, int, int] | None = None) -> Row:
    version = version or (sys.version_info[0], sys.version_info[1], sys.version_info[2])
    text = ".".join(map(str, version))
    if version[:2] < (3, 11):
        return Row("python", FAIL, text, "oakpipe needs Python 3.11 or newer")
    return Row("python", OK, f"{text} ({platform.machine()})")


def package_rows(versions: Mapping[str, str | None] | None = None) -> list[Row]:
    """importlib.metadata versions (no imports: torch alone takes seconds)."""
    versions = versions if versions is not None else {name: version_of(name) for name in PACKAGES}
    rows = []
    for name, purpose in PACKAGES.items():
        found = versions.get(name)
        if found is None and name in CONVERT_MODULES:  # a light, run-only install: convert needs the extra
            rows.append(Row(name, WARN, f"not installed (needed for {purpose}; run works without it)",
                            CONVERT_INSTALL))
        elif found is None:
            rows.append(Row(name, FAIL, f"not installed (needed for {purpose})", f"pip install {name}"))
        elif name == "depthai" and not found.startswith("3."):
            rows.append(Row(name, WARN, f"{found}: oakpipe's camera code is written for depthai 3",
                            "pip install 'depthai>=3,<4'"))
        else:
            rows.append(Row(name, OK, found))
    return rows


def compiler_row(probe: bool = True) -> Row:
    """The private 2021.4 compiler: installed, and (with ``probe``) compiling a 1-op model."""
    from oakpipe import toolchain

    current = toolchain.status()
    if current.unsupported:  # not fixable here: the platform row says what to do instead
        return Row("compiler", WARN, "none for this platform (see the platform row)")
    if not current.installed:
        problem = "; ".join(current.problems) or "not installed"
        return Row("compiler", FAIL, f"MyriadX compiler missing: {problem}",
                   f"run: {toolchain.INSTALL_COMMAND} (or use --compiler blobconverter, which uploads the model)")
    if not probe or not is_installed("onnx"):  # the 1-op test graph is written with onnx (the convert extra)
        why = "--no-compile" if not probe else "onnx not installed"
        return Row("compiler", OK, f"OpenVINO {current.openvino} (not test-compiled: {why})")
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="oakpipe-doctor-") as tmp:
            onnx_path = write_one_op_onnx(Path(tmp) / "relu.onnx")
            result = toolchain.compile_onnx_to_blob(onnx_path, Path(tmp) / "relu.blob", shaves=1, timeout=120)
            made = (Path(tmp) / "relu.blob").is_file()
    except Exception as exc:  # ToolchainError, a crash: report, don't raise
        return Row("compiler", FAIL, f"test compile failed: {exc}", f"reinstall: {toolchain.INSTALL_COMMAND}")
    if not (result.get("ok") and made):
        message = " ".join(str(result.get("message", "no blob written")).split())[:200]
        return Row("compiler", FAIL, f"test compile failed: {message}", f"reinstall: {toolchain.INSTALL_COMMAND}")
    seconds = time.perf_counter() - started
    version = (current.openvino or "2021.4").split("-")[0]
    return Row("compiler", OK, f"OpenVINO {version} MYRIAD: 1-op test blob in {seconds:.1f} s")


def platform_row() -> Row:
    """Blobs compile only where openvino 2021.4.2 has wheels; everything else works anywhere."""
    from oakpipe.toolchain.platforms import ELSEWHERE_HINT, compiler_platform_problem, this_platform

    problem = compiler_platform_problem()
    if problem:
        return Row("platform", WARN, f"{this_platform()}: run, ONNX, IR and verify work; {problem}", ELSEWHERE_HINT)
    return Row("platform", OK, f"{this_platform()}: blobs compile here")


def write_one_op_onnx(path: Path) -> Path:
    """Relu on 1x3x8x8: the smallest graph that exercises the whole compiler."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "doctor", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    model.ir_version = 7  # OpenVINO 2021.4 reads IR versions up to 7
    onnx.save(model, str(path))
    return path


def movidius_usb_devices(root: Path = USB_DEVICES) -> list[str]:
    """'03e7:2485'-style ids of Movidius/Luxonis USB devices, from sysfs (what lsusb reads)."""
    found = []
    for vendor_file in sorted(root.glob("*/idVendor")) if root.is_dir() else []:
        try:
            if vendor_file.read_text().strip().lower() == MOVIDIUS_VENDOR:
                product = (vendor_file.parent / "idProduct").read_text().strip().lower()
                found.append(f"{MOVIDIUS_VENDOR}:{product}")
        except OSError:
            continue
    return found


def device_rows(oaks: Sequence | None = None, usb_ids: Iterable[str] | None = None, system: str | None = None,
                usb_speed: Callable | None = None) -> list[Row]:
    """One row per OAK on the bus with its state, MxId, port and USB speed; or why there is none.

    ``usb_speed(oak)`` opens a ready OAK for its link speed (a few seconds: the firmware boots).
    """
    from oakpipe.live import oak_devices as od

    if oaks is None:
        try:
            oaks = od.list_oaks()
        except Exception as exc:  # depthai missing or broken: the package row says more
            return [Row("oak devices", WARN, f"depthai cannot list devices: {exc}", "pip install 'depthai>=3,<4'")]
    if oaks:
        return [oak_row(oak, usb_speed or read_usb_speed) for oak in oaks]
    system = system or platform.system()
    usb = list(usb_ids) if usb_ids is not None else (movidius_usb_devices() if system == "Linux" else [])
    if usb:
        return [Row("oak devices", WARN, f"USB shows {', '.join(usb)} but depthai cannot open it "
                    "(no permission: udev rule missing)", od.UDEV_FIX)]
    return [Row("oak devices", WARN, "none attached (oakpipe run --backend host emulates one)", od.NO_DEVICE_HINT)]


def oak_row(oak, usb_speed: Callable) -> Row:
    from oakpipe.live import oak_devices as od

    name = f"oak {oak.device_id or oak.name or '?'}"
    where = f"{oak.protocol} {oak.name or '?'}, state {oak.state}"
    problem = oak.problem()
    if problem is not None:
        return Row(name, WARN, f"{where}: {problem[0]}", problem[1])
    try:
        speed = usb_speed(oak) if oak.protocol.startswith("USB") else None
    except Exception as exc:  # it may have been taken or unplugged since the listing
        return Row(name, WARN, f"{where}: listed, but it did not open ({exc})", "unplug and replug it")
    shown = getattr(speed, "name", speed)
    detail = f"{where}, ready" + (f", USB {shown}" if shown else "")
    slow = od.usb_speed_warning(speed) if speed is not None else None
    if slow:
        return Row(name, WARN, f"{detail}: {slow}", "plug it into a USB3 port (blue) with a USB3 cable")
    return Row(name, OK, detail)


def read_usb_speed(oak):
    """The link speed of a ready OAK (depthai reports it only for an open device)."""
    from oakpipe.live import oak_devices as od

    dai = od.load_depthai()
    device = od.open_device(oak, dai)
    try:
        return device.getUsbSpeed()
    finally:
        device.close()


def display_row(env: Mapping[str, str] | None = None, gui: bool | None = None, window_test: bool = True) -> Row:
    """A window needs a display server *and* an OpenCV built with a GUI backend."""
    from oakpipe.live.display import GUI_HINT, gui_available

    env = os.environ if env is None else env
    screen = env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")
    gui = gui_available() if gui is None else gui
    if not screen:
        return Row("display", WARN, "no $DISPLAY or $WAYLAND_DISPLAY: run shows no window",
                   "use --display web (a browser), --display none with --record out.mp4, or a desktop session")
    if not gui:
        return Row("display", WARN, f"display {screen}, but OpenCV is headless (no GUI)", GUI_HINT)
    if window_test:
        problem = window_problem()
        if problem:
            return Row("display", WARN, f"display {screen}: OpenCV cannot open a window: {problem}",
                       "check xhost / $XAUTHORITY, or use --display none with --record out.mp4")
    return Row("display", OK, f"display {screen}, OpenCV with GUI")


def window_problem(timeout: float = 15) -> str | None:
    """Open and close a window in a child process (a broken X connection can abort the process)."""
    code = "import cv2; cv2.namedWindow('oakpipe doctor'); cv2.waitKey(1); cv2.destroyAllWindows()"
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"no answer in {timeout:.0f} s"
    if proc.returncode != 0:
        return ((proc.stderr or "").strip().splitlines() or [f"exit {proc.returncode}"])[-1][:160]
    return None


def telemetry_row(env: Mapping[str, str] | None = None) -> Row:
    env = os.environ if env is None else env
    value = env.get("DEPTHAI_TELEMETRY")
    if value == "0":
        return Row("telemetry", OK, "DEPTHAI_TELEMETRY=0 (depthai sends no usage data)")
    shown = "unset" if value is None else f"DEPTHAI_TELEMETRY={value}"
    return Row("telemetry", WARN, f"{shown}: depthai sends usage data to Luxonis",
               "export DEPTHAI_TELEMETRY=0 (oakpipe sets it for itself unless you set it otherwise)")


def run_checks(compile_probe: bool = True) -> list[Row]:
    return [python_row(), *package_rows(), platform_row(), compiler_row(compile_probe), *device_rows(), display_row(),
            telemetry_row()]


def table_lines(rows: Sequence[Row]) -> list[str]:
    """An aligned table; a row that is not ok gets its fix on the line below."""
    width = max(len("check"), *(len(r.name) for r in rows))
    lines = [f"{'check':<{width}}  status  detail"]
    for row in rows:
        lines.append(f"{row.name:<{width}}  {row.status:<6}  {row.detail}")
        if row.fix and row.status != OK:
            lines.append(f"{'':<{width}}  {'':<6}  -> {row.fix}")
    failed = sum(r.status == FAIL for r in rows)
    warned = sum(r.status == WARN for r in rows)
    lines.append("all good" if not (failed or warned) else f"{failed} failed, {warned} warning(s)")
    return lines
