"""Which oakpipe source files a stage runs, found by reading imports, and their digest.

A stage's cache key must change whenever code it runs changes. A hand-kept list of files
goes stale (it once missed ``preprocessing.py``, so an edited camera contract was served
from the cache), so the list is computed: the transitive closure of the ``oakpipe.*``
imports of the stage's modules, read from their text (imports inside functions included,
since stages import lazily), hashed by content.

Packages that a module merely sits in (``oakpipe/__init__.py`` re-exports the API) are
hashed but their own imports are not followed: importing ``oakpipe.stages.ir`` runs them,
but the stage calls nothing they import. A package imported by name (``from
oakpipe.toolchain import ...``) is followed like any module.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
ROOT = "oakpipe"


def module_file(name: str, package: Path = PACKAGE) -> Path | None:
    """``oakpipe.stages.ir`` -> its file (a package's ``__init__.py``), or None if not ours."""
    parts = name.split(".")
    if parts[0] != ROOT:
        return None
    base = package.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


#: ``import a.b as c, d`` and ``from .a import (b, c)``, wherever they stand (inside functions
#: too). Text that only looks like an import (in a docstring) can only add files, never hide one.
IMPORT = re.compile(r"^[ \t]*import[ \t]+([\w.]+(?:[ \t]+as[ \t]+\w+)?(?:[ \t]*,[ \t]*[\w.]+(?:[ \t]+as[ \t]+\w+)?)*)", re.M)
FROM_IMPORT = re.compile(r"^[ \t]*from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n;#]*)", re.M)


@functools.lru_cache(maxsize=None)
def _imported_names(path: Path, name: str, package: Path) -> set[str]:
    """Every absolute module name ``path`` imports: ``from a import b`` gives a.b when b is
    a module, else a (whose code defines b).

    A scan of the text rather than ``ast``: the same statements (a test checks it against
    ``ast`` on every module) at a fraction of the cost, which every cached convert pays."""
    # Comments go first: one inside an import's parentheses may hold a ")" of its own.
    text = re.sub(r"#[^\n]*", "", path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for match in IMPORT.finditer(text):
        names.update(part.split()[0] for part in match.group(1).split(","))
    for match in FROM_IMPORT.finditer(text):
        module = match.group(1)
        level = len(module) - len(module.lstrip("."))
        base = _absolute(module.lstrip(".") or None, level, name, is_package)
        aliases = re.sub(r"#[^\n]*", "", match.group(2)).strip("()").replace("\\", " ")
        for alias in aliases.split(","):
            alias = alias.split()[0] if alias.split() else ""
            if alias and alias != "*":
                submodule = f"{base}.{alias}"
                names.add(submodule if module_file(submodule, package) else base)
            elif alias == "*":
                names.add(base)
    return names


def _absolute(module: str | None, level: int, importer: str, is_package: bool) -> str:
    if level == 0:
        return module or ""
    parts = importer.split(".")
    anchor = parts if is_package else parts[:-1]
    anchor = anchor[: len(anchor) - (level - 1)]
    return ".".join(anchor + ([module] if module else []))


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@functools.lru_cache(maxsize=None)
def closure(modules: tuple[str, ...], package: Path = PACKAGE) -> tuple[Path, ...]:
    """The files of ``modules`` and of every oakpipe module they import, transitively."""
    followed: dict[str, Path] = {}
    pending = list(modules)
    while pending:
        name = pending.pop()
        path = module_file(name, package)
        if path is None or name in followed:
            continue
        followed[name] = path
        pending += [n for n in _imported_names(path, name, package) if n.startswith(ROOT + ".") or n == ROOT]
    files = set(followed.values())
    for name in followed:  # the packages they sit in run too (hashed, not followed)
        files.update(p for p in (module_file(parent, package) for parent in _parents(name)) if p)
    return tuple(sorted(files))


def code_digest(modules: Iterable[str], data: Iterable[Path] = (), package: Path = PACKAGE) -> str:
    """One digest over the content of every file ``modules`` run (and ``data`` files they read)."""
    files = list(closure(tuple(sorted(modules)), package)) + [Path(p) for p in data]
    entries = {str(p.relative_to(package) if p.is_relative_to(package) else p): _file_digest(p) for p in files}
    return hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()


@functools.lru_cache(maxsize=None)
def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
