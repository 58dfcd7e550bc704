"""Compile an ONNX file to a MyriadX blob with OpenVINO 2021.4's MYRIAD plugin.

Runs in oakpipe's private toolchain interpreter (CPython 3.8/3.9 with openvino==2021.4.2),
never in the main environment: keep this file free of oakpipe imports and of syntax
newer than Python 3.8.

Usage: python compile_worker.py REQUEST.json
The request names the ONNX file, the blob path and the shave count. The last line on
stdout is ``OAKPIPE_RESULT {json}`` with ``ok`` and either blob facts or the compiler's
error message.

No OAK is needed. Two things stand between the MYRIAD plugin and an offline compile:
1. ``load_network`` searches for a device unless told the platform (``VPU_MYRIAD_PLATFORM``);
2. the Python binding then creates inference requests, which needs a device. We patch
   ``IEExecNetwork::createInferRequests`` into an immediate return before calling it: the
   compiled graph is complete by then, and ``export`` only serialises it.

And one thing makes it slow: mvnc's ``ncDeviceOpen`` (inlined into libmyriadPlugin.so)
waits for a device to appear by re-enumerating USB and PCIe in a busy loop until a
hard-coded 5 s deadline (``DEVICE_APPEAR_TIMEOUT_ON_OPEN``); nothing configurable bounds
it. ``skip_device_appear_wait`` turns the loop's back-edge into a jump to its "not found"
exit, so the search runs once: an attached device is still found and booted as before,
an absent one costs milliseconds instead of 5 s. The patch checks the exact bytes of the
2021.4.2 build first and changes nothing on any other build (the compile is then 5 s
slower, not wrong). Blobs are byte-identical either way. ``OAKPIPE_SLOW_COMPILE=1``
turns it off.
"""

import ctypes
import json
import mmap
import os
import platform
import sys
import time
import traceback

# oakpipe/privacy.py's PRELUDE (this file cannot import oakpipe): OpenVINO's telemetry, if a
# Model Optimizer install brought it into this environment, falls back to its no-op stub.
sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]

RESULT_PREFIX = "OAKPIPE_RESULT "
CREATE_INFER_REQUESTS = "_ZN21InferenceEnginePython13IEExecNetwork19createInferRequestsEi"
X86_RET = b"\xc3"


def preload_libusb():
    """The MYRIAD plugin links libusb-1.0 even when no device is used; take PyPI's copy."""
    try:
        import libusb_package
    except ImportError:
        return  # the system's libusb-1.0-0, if any, will do
    path = os.path.join(os.path.dirname(libusb_package.__file__), "libusb-1.0.so")
    if os.path.exists(path):
        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)


def make_function_return_immediately(library_path, symbol):
    """Overwrite the first byte of an exported void function with ``ret`` (x86-64 only)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        raise RuntimeError("the OpenVINO 2021.4 wheels exist for x86-64 only")
    function = ctypes.CDLL(library_path)[symbol]
    address = ctypes.cast(function, ctypes.c_void_p).value
    first_byte = ctypes.string_at(address, 1)
    if not patch_code(address, first_byte, X86_RET):
        raise OSError("could not patch " + symbol)


def patch_code(address, expected, replacement):
    """Replace ``expected`` bytes at ``address`` with ``replacement`` in a code page."""
    current = ctypes.string_at(address, len(expected))
    if current[: len(replacement)] == replacement:
        return True  # already patched in this process
    if current != expected:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    page = address & ~(mmap.PAGESIZE - 1)
    length = ((address + len(replacement) - page) // mmap.PAGESIZE + 1) * mmap.PAGESIZE
    read_write_exec, read_exec = 7, 5
    if libc.mprotect(page, length, read_write_exec) != 0:
        return False
    ctypes.memmove(address, replacement, len(replacement))
    libc.mprotect(page, length, read_exec)
    return True


class DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


# Offsets in openvino==2021.4.2's libmyriadPlugin.so (sha256 5e86f369...bc7e1c), found by
# disassembly: the export we anchor on, the loop's back-edge after a failed
# XLinkFindFirstSuitableDevice, and the "not found" exit (unlock, return NC_ERROR).
PLUGIN_ANCHOR = ("CreatePluginEngine", 0x56A10)
SEARCH_CALL_AT = 0x8725A
SEARCH_CALL_BYTES = bytes.fromhex("e871cc3300" "85c0" "0f8411010000" "f20f100521f36c00")
BACK_EDGE_AT = 0x87267
NOT_FOUND_EXIT_AT = 0x872C8
NOT_FOUND_EXIT_BYTES = bytes.fromhex("8b3d62ed6c00" "be08000000")


def skip_device_appear_wait(plugin_path):
    """Make the 5 s device-appear loop give up after one search. Returns True if patched."""
    plugin = ctypes.CDLL(plugin_path)  # the same handle IECore gets when it loads the plugin
    libc = ctypes.CDLL(None)
    libc.dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(DlInfo)]
    name, offset = PLUGIN_ANCHOR
    anchor = ctypes.cast(plugin[name], ctypes.c_void_p).value
    info = DlInfo()
    if not libc.dladdr(anchor, ctypes.byref(info)) or anchor - info.dli_fbase != offset:
        return False
    base = info.dli_fbase
    if ctypes.string_at(base + NOT_FOUND_EXIT_AT, len(NOT_FOUND_EXIT_BYTES)) != NOT_FOUND_EXIT_BYTES:
        return False
    jump = b"\xe9" + (NOT_FOUND_EXIT_AT - (BACK_EDGE_AT + 5)).to_bytes(4, "little", signed=True) + b"\x90" * 3
    back_edge = BACK_EDGE_AT - SEARCH_CALL_AT
    expected = SEARCH_CALL_BYTES[back_edge:]
    return patch_code(base + BACK_EDGE_AT, expected, jump)


def describe_ports(ports):
    """Input infos wrap their data; outputs are data. Both carry shape and precision."""
    described = {}
    for name, port in ports.items():
        data = getattr(port, "input_data", port)
        described[name] = {"shape": list(data.shape), "precision": port.precision}
    return described


def prepare_compiler():
    """Import the 2021.4 Inference Engine and make it compile offline, fast.
    Returns (IECore class, get_version, whether the device wait was skipped)."""
    preload_libusb()
    from openvino.inference_engine import IECore, get_version, ie_api

    make_function_return_immediately(ie_api.__file__, CREATE_INFER_REQUESTS)
    fast = False
    if os.environ.get("OAKPIPE_SLOW_COMPILE") != "1":
        libs = os.path.join(os.path.dirname(os.path.dirname(ie_api.__file__)), "libs")
        fast = skip_device_appear_wait(os.path.realpath(os.path.join(libs, "libmyriadPlugin.so")))
    return IECore, get_version, fast


def myriad_config(request):
    """The compile configuration Luxonis' converter uses: CMX slices = shaves, one stream."""
    shaves = str(request.get("shaves", 6))
    config = {
        "VPU_MYRIAD_PLATFORM": "VPU_MYRIAD_2480",  # MyriadX: no device search
        "MYRIAD_NUMBER_OF_SHAVES": shaves,
        "MYRIAD_NUMBER_OF_CMX_SLICES": shaves,
        "MYRIAD_THROUGHPUT_STREAMS": "1",
    }
    config.update(request.get("extra_config", {}))
    return config


def compile_blob(request):
    timings = {}
    start = time.perf_counter()
    IECore, get_version, fast = prepare_compiler()
    timings["import"] = time.perf_counter() - start

    core = IECore()
    try:
        network = core.read_network(model=request["onnx"])
    except Exception as exc:
        return {"ok": False, "phase": "read", "message": str(exc)}
    for info in network.input_info.values():
        info.precision = request.get("input_precision", "U8")
    for data in network.outputs.values():
        data.precision = request.get("output_precision", "FP16")
    config = myriad_config(request)
    timings["read"] = time.perf_counter() - start - timings["import"]
    compile_start = time.perf_counter()
    try:
        executable = core.load_network(network, "MYRIAD", config)
    except Exception as exc:
        return {"ok": False, "phase": "compile", "message": str(exc)}
    timings["compile"] = time.perf_counter() - compile_start
    executable.export(request["blob"])
    return {
        "ok": True,
        "openvino_version": get_version(),
        "inputs": describe_ports(network.input_info),
        "outputs": describe_ports(network.outputs),
        "config": config,
        "device_wait_skipped": fast,
        "timings": timings,
    }


PROBE_PREFIX = "OAKPIPE_PROBE "


def compile_probes(request):
    """Batch mode (the preflight): compile many small ONNX graphs in this one process.

    Request: {"probes": [{"onnx": path, "blob": path or null}, ...], "shaves": 6,
    "input_precision": null, "output_precision": null}. A null precision leaves the
    graph's own (probes may carry FP32 or integer ports). Each verdict is also printed at
    once as ``OAKPIPE_PROBE {"index": i, "ok": ..., "message": ...}``, so that if the
    compiler crashes the process, the caller knows which probe did it and what finished.
    """
    start = time.perf_counter()
    IECore, get_version, fast = prepare_compiler()
    core = IECore()
    config = myriad_config(request)
    results = []
    for index, probe in enumerate(request["probes"]):
        probe_start = time.perf_counter()
        verdict = {"index": index, "ok": False}
        try:
            network = core.read_network(model=probe["onnx"])
        except Exception as exc:
            verdict.update(phase="read", message=str(exc))
        else:
            if request.get("input_precision"):
                for info in network.input_info.values():
                    info.precision = request["input_precision"]
            if request.get("output_precision"):
                for data in network.outputs.values():
                    data.precision = request["output_precision"]
            try:
                executable = core.load_network(network, "MYRIAD", config)
                if probe.get("blob"):
                    executable.export(probe["blob"])
                verdict["ok"] = True
            except Exception as exc:
                verdict.update(phase="compile", message=str(exc))
        verdict["seconds"] = time.perf_counter() - probe_start
        sys.stdout.write("\n" + PROBE_PREFIX + json.dumps(verdict) + "\n")
        sys.stdout.flush()
        results.append(verdict)
    return {"ok": True, "openvino_version": get_version(), "probes": results,
            "device_wait_skipped": fast, "seconds": time.perf_counter() - start}


def infer_on_cpu(request):
    """Run a graph through 2021.4's own frontend and CPU plugin, the closest thing to the
    device the host has: it reads the graph exactly as the MYRIAD compiler does. bf16 is
    switched off (it is the default on CPUs with AVX512-BF16). Inputs and outputs travel
    as .npy files: request {"infer": model path, "inputs": [npy], "outputs_dir": dir}."""
    import numpy as np

    preload_libusb()
    from openvino.inference_engine import IECore, get_version

    core = IECore()
    network = core.read_network(model=request["infer"])
    input_name = next(iter(network.input_info))
    network.input_info[input_name].precision = "U8"
    for data in network.outputs.values():
        data.precision = "FP32"
    executable = core.load_network(network, "CPU", {"ENFORCE_BF16": "NO"})
    saved = []
    for index, path in enumerate(request["inputs"]):
        outputs = executable.infer({input_name: np.load(path)})
        for name, value in outputs.items():
            target = os.path.join(request["outputs_dir"], "%d.%s.npy" % (index, name.replace("/", "_")))
            np.save(target, value)
            saved.append({"index": index, "output": name, "path": target})
    return {"ok": True, "openvino_version": get_version(), "outputs": saved}


def main():
    with open(sys.argv[1]) as handle:
        request = json.load(handle)
    try:
        if "probes" in request:
            result = compile_probes(request)
        elif "infer" in request:
            result = infer_on_cpu(request)
        else:
            result = compile_blob(request)
    except Exception as exc:  # report, never hang the caller
        result = {"ok": False, "phase": "internal", "message": repr(exc), "traceback": traceback.format_exc()}
    sys.stdout.write("\n" + RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
