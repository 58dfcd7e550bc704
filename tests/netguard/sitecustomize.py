"""Network guard for tests/test_privacy.py: loaded into every Python process of a run.

A ``sitecustomize`` on PYTHONPATH, so Python imports it at start-up in the process under
test and in each Python child. An audit hook (PEP 578, Python 3.8+: the 3.9 compile worker
too) sees every ``socket.connect``/``sendto`` and name lookup before it happens. One that
leaves this machine is written to ``$OAKPIPE_NET_GUARD_LOG`` and refused by raising, so the
guard never sends anything; refusals that the caller swallows still fail the test through
the log. Child processes started with their own environment (the compile worker is run
with ``PYTHONPATH=""``) get this folder put back on their PYTHONPATH by the
``subprocess.Popen`` hook. Native sockets are invisible here: the strace check covers them.
Keep this file Python 3.8 syntax.
"""

import ipaddress
import json
import os
import sys
import traceback

LOG = os.environ.get("OAKPIPE_NET_GUARD_LOG")
HERE = os.path.dirname(os.path.abspath(__file__))
LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}
LOOKUPS = ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex",
           "socket.gethostbyaddr", "socket.getnameinfo")


class NetworkRefused(OSError):
    """Raised instead of a connect or lookup that would leave the machine."""


def is_local_host(host):
    """Loopback address or name, a path (AF_UNIX) or no host at all (a bind to any port)."""
    if host is None or isinstance(host, (bytes, bytearray)):
        return True  # AF_UNIX abstract or path addresses
    host = str(host).split("%")[0]
    if host.lower() in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name that would need a lookup


def is_local_address(address):
    if isinstance(address, (str, bytes, bytearray)):
        return True  # AF_UNIX
    if isinstance(address, tuple) and address:
        return is_local_host(address[0])
    return True  # AF_NETLINK (pid, groups) and other local families


def violation(event, args):
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        if not is_local_address(args[1] if len(args) > 1 else None):
            return repr(args[1])
    elif event in LOOKUPS:
        target = args[0]
        if event == "socket.getnameinfo":
            target = target[0] if isinstance(target, tuple) else target
        if isinstance(target, (bytes, bytearray)):
            target = target.decode("ascii", "replace")  # a name, not an AF_UNIX path
        if not is_local_host(target):
            return repr(target)
    return None


def record(event, detail):
    entry = {"pid": os.getpid(), "event": event, "target": detail, "argv": sys.argv[:3],
             "stack": traceback.format_stack(limit=12)[:-2]}
    with open(LOG, "a") as out:
        out.write(json.dumps(entry) + "\n")


def child_environment(env):
    """Put this folder back on a Python child's PYTHONPATH (in place: Popen reads it next)."""
    if isinstance(env, dict):
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        if HERE not in paths:
            env["PYTHONPATH"] = os.pathsep.join([HERE] + paths)
        env.setdefault("OAKPIPE_NET_GUARD_LOG", LOG)


def hook(event, args):
    if event == "subprocess.Popen":
        child_environment(args[3])
        return
    if not event.startswith("socket."):
        return
    detail = violation(event, args)
    if detail is not None:
        record(event, detail)
        raise NetworkRefused("network use refused by the oakpipe test guard: %s %s" % (event, detail))


if LOG:
    sys.addaudithook(hook)
