"""Zero network unless asked: convert and run, watched by a guard that refuses any socket
or name lookup leaving the machine (tests/netguard/sitecustomize.py, in every Python
process of the run, the 3.9 compile worker included) and, where strace is installed, by
the kernel's view of every connect/sendto/sendmsg (native code too). The guard is itself
tested on real violations, refused before they send anything."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from oakpipe import privacy, toolchain

GUARD_DIR = Path(__file__).parent / "netguard"
REPO = Path(__file__).resolve().parent.parent
TEST_NET = "192.0.2.1"  # RFC 5737 TEST-NET-1: never routed, and refused before any packet anyway
LOCAL_FAMILIES = {"AF_UNIX", "AF_LOCAL", "AF_NETLINK", "AF_UNSPEC"}
STRACE_CALLS = "connect,sendto,sendmsg"


def guarded_env(tmp_path: Path) -> dict[str, str]:
    """A clean user: empty HOME (to see what gets written there), no telemetry variables set
    by us (oakpipe must set its own), the guard on PYTHONPATH before this worktree."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DEPTHAI_TELEMETRY", "ORT_DISABLE_TELEMETRY", "CI", "TF_BUILD", "JENKINS_URL")}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), OAKPIPE_TOOLCHAIN_DIR=str(toolchain.toolchain_dir()),
               OAKPIPE_NET_GUARD_LOG=str(tmp_path / "guard.jsonl"),
               PYTHONPATH=os.pathsep.join([str(GUARD_DIR), str(REPO)]))
    return env


def guard_log(tmp_path: Path) -> list[dict]:
    log = tmp_path / "guard.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def strace_violations(trace: str) -> list[str]:
    """Lines of an ``strace -f -e trace=connect,sendto,sendmsg`` log that reach beyond this
    machine: any address family but local ones, or an IPv4/IPv6 address that is not loopback."""
    bad = []
    for line in trace.splitlines():
        for family, rest in re.findall(r"sa_family=(\w+)(.{0,160})", line):
            if family in LOCAL_FAMILIES:
                continue
            v4 = re.search(r'inet_addr\("([\d.]+)"\)', rest)
            v6 = re.search(r'inet_pton\(AF_INET6, "([^"]+)"', rest)
            if family == "AF_INET" and v4 and v4.group(1).startswith("127."):
                continue
            if family == "AF_INET6" and v6 and v6.group(1) in ("::1", "::ffff:127.0.0.1"):
                continue
            bad.append(line)
    return bad


def traced(args: list[str], env: dict, trace: Path, timeout: float) -> subprocess.CompletedProcess:
    """Run ARGS under strace when it is installed (scripts/install_test_deps.sh adds it)."""
    prefix = ["strace", "-f", "-qq", "-e", f"trace={STRACE_CALLS}", "-o", str(trace)] if shutil.which("strace") else []
    return subprocess.run(prefix + args, env=env, capture_output=True, text=True, timeout=timeout, cwd=trace.parent)


def test_apply_sets_depthai_switch_and_blocks_openvino_telemetry():
    env, modules = {}, {"openvino_telemetry": object()}
    privacy.apply(env, modules)
    assert env == {"DEPTHAI_TELEMETRY": "0", "ORT_DISABLE_TELEMETRY": "1"}
    assert modules["openvino_telemetry"] is None  # even when imported before oakpipe
    chosen = {"DEPTHAI_TELEMETRY": "1"}
    privacy.apply(chosen, {})
    assert chosen["DEPTHAI_TELEMETRY"] == "1"  # a user's explicit choice stays (doctor warns)


def test_compile_worker_repeats_the_prelude():
    """The worker cannot import oakpipe: it must carry the same block itself."""
    source = Path(toolchain.WORKER).read_text()
    for name in privacy.BLOCKED_MODULES:
        assert f'sys.modules["{name}"] = None' in source
        assert f"sys.modules['{name}'] = None" in privacy.PRELUDE


def test_import_oakpipe_makes_openvino_use_its_stub(tmp_path):
    """The Python API path: ``import oakpipe`` first, then OpenVINO's converter sees no
    telemetry package, uses its no-op stub, and writes nothing under ~/intel."""
    code = ("import oakpipe, os, openvino\n"
            "from openvino.tools.ovc import telemetry_utils\n"
            "print(telemetry_utils.tm.__name__, os.environ['DEPTHAI_TELEMETRY'])\n")
    env = guarded_env(tmp_path)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["openvino.tools.ovc.telemetry_stub", "0"]
    assert not (Path(env["HOME"]) / "intel").exists()
    assert guard_log(tmp_path) == []


def test_import_oakpipe_keeps_onnxruntime_telemetry_off(tmp_path):
    """onnxruntime starts its telemetry (a device id and an event database under
    ~/.cache/Microsoft, uploaded later in the background) on import; after ``import
    oakpipe`` it writes nothing there."""
    env = guarded_env(tmp_path)
    code = "import oakpipe, onnxruntime, time; time.sleep(1)"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert not (Path(env["HOME"]) / ".cache" / "Microsoft").exists()


GUARD_SELF_TEST = f"""
import socket, subprocess, sys
refused = []
def attempt(name, call):
    try:
        call()
    except OSError as exc:
        refused.append(name if type(exc).__name__ == "NetworkRefused" else name + ":" + type(exc).__name__)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
attempt("connect", lambda: udp.connect(("{TEST_NET}", 9)))
attempt("sendto", lambda: udp.sendto(b"x", ("{TEST_NET}", 9)))
attempt("getaddrinfo", lambda: socket.getaddrinfo("example.invalid", 80))
attempt("gethostbyname", lambda: socket.gethostbyname("example.org"))
attempt("getaddrinfo", lambda: socket.getaddrinfo(b"example.org", 443))
attempt("connect", lambda: socket.create_connection(("example.org", 443), timeout=1))
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(1)
client = socket.create_connection(server.getsockname())  # loopback: allowed
socket.getaddrinfo("localhost", 80)  # /etc/hosts: allowed
child = "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).connect(('{TEST_NET}', 9))"
subprocess.run([sys.argv[1], "-c", child], env={{"PYTHONPATH": ""}})  # as oakpipe runs the worker
print(" ".join(refused))
"""


def test_guard_refuses_and_records_real_violations(tmp_path):
    """A connect and a sendto to TEST-NET and two lookups are refused before they happen
    and logged; loopback passes; a child started with PYTHONPATH="" is guarded too, with the
    toolchain's Python 3.9 when installed (the compile worker's interpreter)."""
    child_python = toolchain.toolchain_python()
    child_python = str(child_python) if child_python.exists() else sys.executable
    proc = subprocess.run([sys.executable, "-c", GUARD_SELF_TEST, child_python], env=guarded_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["connect", "sendto", "getaddrinfo", "gethostbyname", "getaddrinfo", "connect"]
    log = guard_log(tmp_path)
    assert [(e["event"], e["target"]) for e in log] == [
        ("socket.connect", repr((TEST_NET, 9))), ("socket.sendto", repr((TEST_NET, 9))),
        ("socket.getaddrinfo", "'example.invalid'"), ("socket.gethostbyname", "'example.org'"),
        ("socket.getaddrinfo", "'example.org'"),
        ("socket.getaddrinfo", "'example.org'"),  # create_connection looks the name up first
        ("socket.connect", repr((TEST_NET, 9)))]
    assert len({e["pid"] for e in log}) == 2  # the last one came from the child


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed (scripts/install_test_deps.sh)")
def test_strace_check_sees_native_connects(tmp_path):
    """Without the guard, a UDP connect (a syscall that sends no packet) to TEST-NET shows
    up in strace and is flagged; the loopback connect next to it is not."""
    code = ("import socket\n"
            f"socket.socket(socket.AF_INET, socket.SOCK_DGRAM).connect(('{TEST_NET}', 9))\n"
            "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).connect(('127.0.0.1', 9))\n"
            "socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).connect(('::1', 9))\n")
    trace = tmp_path / "strace.txt"
    proc = traced([sys.executable, "-c", code], dict(os.environ), trace, timeout=60)
    assert proc.returncode == 0, proc.stderr
    bad = strace_violations(trace.read_text())
    assert len(bad) == 1 and TEST_NET in bad[0]


@pytest.mark.toolchain
def test_convert_and_run_use_no_network(tmp_path):
    """convert (every stage, verify and the 2021.4 compile worker included), verify,
    toolchain status and run on the host backend: no connect, send or lookup beyond
    loopback, and nothing under ~/intel. (doctor and run --backend auto look for an OAK:
    depthai's device search is the one allowed exception, so they are not run here.)"""
    env = guarded_env(tmp_path)
    oakpipe = [sys.executable, "-m", "oakpipe"]
    export = tmp_path / "halve"
    steps = {"convert": oakpipe + ["convert", "halve", "--input-shape", "1,3,64,64", "--out", str(export)],
             "verify": oakpipe + ["verify", str(export)],
             "toolchain": oakpipe + ["toolchain", "status"],
             "run": oakpipe + ["run", str(export), "--backend", "host", "--source", "sample", "--frames", "3",
                               "--display", "none"]}
    for name, args in steps.items():
        trace = tmp_path / f"{name}.strace"
        proc = traced(args, env, trace, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert guard_log(tmp_path) == [], f"{name} used the network"
        if trace.exists():
            assert strace_violations(trace.read_text()) == [], f"{name} used the network (native)"
    assert (export / "halve.blob").exists() or any(export.glob("*.blob"))
    assert not (Path(env["HOME"]) / "intel").exists()
    assert not (Path(env["HOME"]) / ".cache" / "Microsoft").exists()  # onnxruntime's telemetry store
