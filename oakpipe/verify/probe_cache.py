"""Probe verdicts cached across runs and projects, keyed by the probe graph's hash, the
compiler's version, the probe format and the SHAVE count, in
``toolchain_dir()/preflight_probes.json`` (merged and replaced atomically)."""

from __future__ import annotations

import json
from pathlib import Path

from oakpipe.blame import clean_compiler_message
from oakpipe.manifest import write_atomic
from oakpipe.verify.probes import PROBE_FORMAT

CACHE_NAME = "preflight_probes.json"


def cache_path() -> Path:
    from oakpipe.toolchain import toolchain_dir

    return toolchain_dir() / CACHE_NAME


def cache_key(digest: str, shaves: int) -> str:
    from oakpipe.toolchain import OPENVINO_VERSION

    return f"openvino-{OPENVINO_VERSION}/probe-v{PROBE_FORMAT}/shaves-{shaves}/{digest}"


def load_cache() -> dict:
    try:
        data = json.loads(cache_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def save_cache(new: dict) -> None:
    """Merge with what is on disk now (another preflight may have written) and replace atomically."""
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = load_cache()
    data.update(new)
    write_atomic(path, json.dumps(data, indent=0, sort_keys=True).encode())


def verdict_of(result: dict) -> dict:
    verdict: dict[str, object] = {"ok": bool(result.get("ok"))}
    if not verdict["ok"]:
        verdict["message"] = clean_compiler_message(result.get("message", "")) or "no message"
        if result.get("crashed"):
            verdict["crashed"] = True
    return verdict
