"""The depthai boundary: loading depthai (telemetry off) and telling the attached OAKs apart.

``Device.getAllAvailableDevices()`` leaves out an OAK another program holds (``X_LINK_BOOTED``)
and, through its connection filter, one the user may not open (no udev rule), so "none
listed" does not mean "none attached". Here every OAK on the bus is listed with
``XLinkConnection.getAllConnectedDevices(X_LINK_ANY_STATE, skipInvalidDevices=False)`` and
given a state a user can act on. ``doctor`` and the device backend both read this module;
nothing else lists devices or imports depthai for the camera.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

from oakpipe import privacy
from oakpipe.errors import DeviceError

UDEV_RULE = 'SUBSYSTEM=="usb", ATTRS{idVendor}=="03e7", MODE="0666"'
UDEV_RELOAD = "sudo udevadm control --reload-rules && sudo udevadm trigger"
UDEV_FIX = (f"echo '{UDEV_RULE}' | sudo tee /etc/udev/rules.d/80-movidius.rules && {UDEV_RELOAD}, "
            "then unplug and replug the OAK")
NO_DEVICE_HINT = "plug an OAK into a USB3 port (in a container: -v /dev/bus/usb:/dev/bus/usb), or use --backend host"

READY, BUSY, NO_PERMISSION, UNREADABLE = "ready", "in use", "no permission", "unreadable"


def load_depthai() -> ModuleType:
    """depthai with its usage telemetry off unless the user asked for it."""
    privacy.apply()  # telemetry off even if the environment changed since import
    import depthai

    return depthai


@dataclass(frozen=True)
class Oak:
    """One OAK on the bus, as a user needs to see it."""

    device_id: str  # the MxId / DeviceId (empty while it cannot be read)
    name: str  # USB port path ("1.3") or IP address
    state: str  # depthai's XLinkDeviceState without the X_LINK_ prefix, e.g. UNBOOTED
    usable: str  # READY, BUSY, NO_PERMISSION or UNREADABLE
    protocol: str  # USB_VSC, TCP_IP, ...
    info: Any = None  # depthai's DeviceInfo, to open this very device

    @property
    def label(self) -> str:
        return f"{self.device_id or '?'} at {self.name or '?'} ({self.state.lower()}, {self.usable})"

    def matches(self, wanted: str) -> bool:
        return wanted in (self.device_id, self.name)

    def problem(self) -> tuple[str, str] | None:
        """(what is wrong, what to do) for an OAK that cannot be opened, else None."""
        if self.usable == BUSY:
            return (f"the OAK {self.label} is in use by another program",
                    "close the other program that uses it (another oakpipe run, depthai viewer, a notebook)")
        if self.usable == NO_PERMISSION:
            return f"the OAK at {self.name or 'USB'} is attached but this user may not open it (no udev rule)", UDEV_FIX
        if self.usable == UNREADABLE:
            return f"the OAK at {self.name or '?'} is attached but does not answer", "unplug and replug it"
        return None


def classify(info: Any, dai: Any) -> Oak:
    """A depthai ``DeviceInfo`` -> an ``Oak`` with a state a user can act on."""
    state, status = info.state, info.status
    if status == dai.XLinkError_t.X_LINK_INSUFFICIENT_PERMISSIONS:
        usable = NO_PERMISSION
    elif status != dai.XLinkError_t.X_LINK_SUCCESS:
        usable = UNREADABLE
    elif state in (dai.XLinkDeviceState.X_LINK_BOOTED, dai.XLinkDeviceState.X_LINK_GATE_BOOTED):
        usable = BUSY  # booted by another host program; depthai will not share it
    else:
        usable = READY  # unbooted, bootloader, flash-booted: depthai boots its firmware into it
    return Oak(info.getDeviceId(), info.name, _enum_name(state), usable, _enum_name(info.protocol), info)


def _enum_name(value: Any) -> str:
    return str(getattr(value, "name", value)).removeprefix("X_LINK_")


def list_oaks(dai: Any = None) -> list[Oak]:
    """Every OAK on the bus, in every state (about 0.5 s with none attached)."""
    dai = dai or load_depthai()
    try:
        infos = dai.XLinkConnection.getAllConnectedDevices(dai.XLinkDeviceState.X_LINK_ANY_STATE, False)
    except RuntimeError:  # e.g. DEPTHAI_PROTOCOL=usb without /dev/bus/usb: nothing can be attached
        return []
    return [classify(info, dai) for info in infos]


def choose_oak(oaks: list[Oak], wanted: str | None = None) -> Oak:
    """The OAK to run on: the one ``wanted`` names (MxId, USB port name or IP), or the only ready one.

    A ``wanted`` that matches none is a DeviceError (exit 6) like no OAK at all: from the
    command line a typo cannot be told from an unplugged camera, and the message lists what
    is attached so the user sees which.
    """
    if wanted:
        chosen = [o for o in oaks if o.matches(wanted)]
        if not chosen:
            attached = "; ".join(o.label for o in oaks) or "none attached"
            raise DeviceError(f"--device {wanted} matches no OAK (attached: {attached})",
                              "give an MxId, USB port name or IP from `oakpipe doctor`" if oaks else NO_DEVICE_HINT)
        return _usable(chosen[0])
    ready = [o for o in oaks if o.usable == READY]
    if len(ready) == 1:
        return ready[0]
    if len(ready) > 1:
        raise DeviceError(f"{len(ready)} OAKs are attached: {'; '.join(o.label for o in ready)}",
                          f"choose one with --device {ready[0].device_id or ready[0].name}")
    if oaks:
        return _usable(oaks[0])
    raise DeviceError("no OAK camera is attached (depthai finds no device)", NO_DEVICE_HINT)


def _usable(oak: Oak) -> Oak:
    problem = oak.problem()
    if problem is not None:
        raise DeviceError(*problem)
    return oak


def open_device(oak: Oak, dai: Any) -> Any:
    """``dai.Device`` for exactly this OAK (its firmware boots now, a few seconds)."""
    try:
        return dai.Device(oak.info)
    except RuntimeError as exc:
        raise DeviceError(f"the OAK {oak.label} could not be opened: {str(exc).strip().splitlines()[0]}",
                          "unplug and replug it; check it is not used by another program") from exc


def usb_speed_warning(speed: Any) -> str | None:
    """A line for a USB2 link (the OAK then gets about a tenth of USB3's bandwidth), else None."""
    name = str(getattr(speed, "name", speed)).upper()
    if name in ("LOW", "FULL", "HIGH"):
        return f"the OAK is connected over USB2 ({name}): use a USB3 port and cable for full frame rates"
    return None
