"""``oakpipe doctor``: each check from fake inputs, the table, the exit code, one real compile."""

from __future__ import annotations

from pathlib import Path

import pytest

from oakpipe import doctor
from oakpipe.cli import main
from oakpipe.doctor import FAIL, OK, WARN, Row


def fake_usb(root: Path, devices: dict[str, tuple[str, str]]) -> Path:
    """A /sys/bus/usb/devices look-alike: one folder per device with idVendor/idProduct."""
    for name, (vendor, product) in devices.items():
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "idVendor").write_text(vendor + "\n")
        (folder / "idProduct").write_text(product + "\n")
    return root


def test_python_and_packages():
    assert doctor.python_row((3, 10, 2)).status == FAIL
    assert doctor.python_row((3, 11, 7)).status == OK
    rows = {r.name: r for r in doctor.package_rows({"torch": "2.13.0", "onnx": None, "onnxruntime": "1.2",
                                                     "openvino": None, "depthai": "2.33.0.0"})}
    assert rows["torch"].status == OK and rows["torch"].detail == "2.13.0"
    # onnx is in the convert extra: a light (run-only) install warns; openvino is core: missing fails
    assert rows["onnx"].status == WARN and rows["onnx"].fix == "pip install 'oakpipe[convert]'"
    assert rows["openvino"].status == FAIL and rows["openvino"].fix == "pip install openvino"
    assert rows["depthai"].status == WARN


def test_real_versions_are_read_without_importing_them():
    import subprocess
    import sys

    rows = doctor.package_rows()
    assert [r.name for r in rows] == list(doctor.PACKAGES) and all(r.detail for r in rows)
    code = "import sys; from oakpipe import doctor; doctor.package_rows(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_movidius_devices_from_sysfs(tmp_path):
    root = fake_usb(tmp_path, {"1-1": ("03e7", "2485"), "1-2": ("8087", "0024"), "2-1": ("03E7", "F63B")})
    assert doctor.movidius_usb_devices(root) == ["03e7:2485", "03e7:f63b"]
    assert doctor.movidius_usb_devices(tmp_path / "absent") == []


def test_usb_device_that_depthai_cannot_list_gets_the_udev_rule(tmp_path):
    [row] = doctor.device_rows([], usb_ids=["03e7:2485"], system="Linux")
    assert row.status == WARN and "03e7:2485" in row.detail
    assert "80-movidius.rules" in row.fix and 'ATTRS{idVendor}=="03e7"' in row.fix and "udevadm trigger" in row.fix


def oaks_in(*states: tuple[str, str]):
    """The OAKs as oakpipe classifies depthai's real DeviceInfo objects in these (state, status)."""
    import depthai as dai

    from oakpipe.live.oak_devices import classify
    from tests.live.conftest import device_info

    return [classify(device_info(state, status, device_id=f"MX{i}", name=f"1.{i}"), dai)
            for i, (state, status) in enumerate(states)]


def test_each_oak_state_is_told_apart():
    import depthai as dai

    from oakpipe.live.oak_devices import UDEV_RELOAD, UDEV_RULE

    oaks = oaks_in(("X_LINK_UNBOOTED", "X_LINK_SUCCESS"), ("X_LINK_BOOTED", "X_LINK_SUCCESS"),
                   ("X_LINK_UNBOOTED", "X_LINK_INSUFFICIENT_PERMISSIONS"), ("X_LINK_BOOTLOADER", "X_LINK_SUCCESS"),
                   ("X_LINK_FLASH_BOOTED", "X_LINK_SUCCESS"))
    opened = []
    rows = doctor.device_rows(oaks, usb_speed=lambda oak: opened.append(oak.device_id) or dai.UsbSpeed.SUPER)
    ready, busy, locked, bootloader, flashed = rows
    assert [r.name for r in rows] == [f"oak MX{i}" for i in range(5)]
    assert ready.status == OK and ready.detail == "USB_VSC 1.0, state UNBOOTED, ready, USB SUPER"
    assert busy.status == WARN and "in use by another program" in busy.detail
    assert locked.status == WARN and "no udev rule" in locked.detail
    assert UDEV_RULE in locked.fix and UDEV_RELOAD in locked.fix
    assert bootloader.status == OK and "state BOOTLOADER" in bootloader.detail
    assert flashed.status == OK and "state FLASH_BOOTED" in flashed.detail
    assert opened == ["MX0", "MX3", "MX4"]  # only ready OAKs are opened for their speed


def test_usb2_link_warns():
    import depthai as dai

    [row] = doctor.device_rows(oaks_in(("X_LINK_UNBOOTED", "X_LINK_SUCCESS")), usb_speed=lambda oak: dai.UsbSpeed.HIGH)
    assert row.status == WARN and "USB2 (HIGH)" in row.detail and "USB3" in row.fix


def test_no_oak():
    [none] = doctor.device_rows([], usb_ids=[], system="Linux")
    assert none.status == WARN and "none attached" in none.detail and "udev" not in none.fix


def test_display():
    assert doctor.display_row({}, gui=True).status == WARN
    headless = doctor.display_row({"DISPLAY": ":0"}, gui=False)
    assert headless.status == WARN and "headless" in headless.detail and "opencv-python" in headless.fix
    assert doctor.display_row({"WAYLAND_DISPLAY": "wayland-0"}, gui=True, window_test=False).status == OK


def test_telemetry():
    assert doctor.telemetry_row({"DEPTHAI_TELEMETRY": "0"}).status == OK
    on = doctor.telemetry_row({"DEPTHAI_TELEMETRY": "1"})
    assert on.status == WARN and "export DEPTHAI_TELEMETRY=0" in on.fix
    assert doctor.telemetry_row({}).status == WARN


def test_missing_compiler_fails_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("OAKPIPE_TOOLCHAIN_DIR", str(tmp_path / "none"))
    row = doctor.compiler_row(probe=True)
    assert row.status == FAIL and "oakpipe toolchain install" in row.fix


def test_table_and_exit_code(monkeypatch, capsys):
    rows = [Row("python", OK, "3.11"), Row("display", WARN, "no display", "use --record")]
    lines = doctor.table_lines(rows)
    assert lines[0].split() == ["check", "status", "detail"]
    assert lines[2].split()[:2] == ["display", "warn"] and lines[3].strip() == "-> use --record"
    assert lines[-1] == "0 failed, 1 warning(s)"
    monkeypatch.setattr(doctor, "run_checks", lambda compile_probe: rows)
    assert main(["doctor"]) == 0
    assert "no display" in capsys.readouterr().out
    monkeypatch.setattr(doctor, "run_checks", lambda compile_probe: rows + [Row("compiler", FAIL, "missing", "x")])
    assert main(["doctor", "--no-compile"]) == 1


@pytest.mark.toolchain
def test_real_doctor_compiles_a_one_op_model(capsys):
    row = doctor.compiler_row(probe=True)
    assert row.status == OK and "test blob" in row.detail
    assert main(["doctor"]) == 0  # this machine has every package and the compiler: nothing fails
    out = capsys.readouterr().out
    for name in ("python", "torch", "onnx", "onnxruntime", "openvino", "depthai", "compiler", "oak devices",
                 "display", "telemetry"):
        assert f"\n{name} " in "\n" + out


def test_usb_speed_is_read_from_the_opened_oak(monkeypatch):
    """The default speed probe opens the OAK through depthai (an autospec of it here) and closes it."""
    import depthai as dai

    from tests.live.conftest import StandInOak

    oak = StandInOak(lambda bgr: {})
    oak.fake.Device.return_value.getUsbSpeed.return_value = dai.UsbSpeed.SUPER
    monkeypatch.setattr("oakpipe.live.oak_devices.load_depthai", lambda: oak.fake)
    [row] = doctor.device_rows()
    assert row.status == OK and row.detail.endswith("ready, USB SUPER")
    oak.fake.Device.return_value.close.assert_called_once()
