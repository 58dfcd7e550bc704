"""``--labels FILE``: class names, one per line, read once and checked as text.

Light on purpose (no numpy, no torch): the option check reads the file before any stage
runs, so an empty or binary file is refused at once, not after the export.
"""

from __future__ import annotations

from pathlib import Path


def read_labels(path: Path) -> list[str]:
    """The non-blank lines of ``path``, stripped; a UserError when it is not names as text."""
    from oakpipe.errors import UserError

    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"--labels {path} is not UTF-8 text", "write one class name per line, as plain text") from None
    except OSError as exc:
        raise UserError(f"--labels {path} cannot be read ({exc.strerror or exc})", "check the file") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names or any("\x00" in name for name in names):
        what = "holds no class names" if not names else "is not text (it holds NUL bytes)"
        raise UserError(f"--labels {path} {what}", "write one class name per line, in output order")
    return names
