"""The bootstrap's choice of interpreter on a machine like Ubuntu 22.04, whose only Python
is 3.10: `scripts/bootstrap.sh --print-python` with a PATH that holds only a 3.10 (a real
pyenv one when present), a stub `apt-get` that records its arguments (and, on install,
puts a python3.11 on PATH as the real package would) and a stub `id` for root or not."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BOOTSTRAP = Path(__file__).resolve().parent.parent / "scripts" / "bootstrap.sh"
BASH = shutil.which("bash") or "/bin/bash"
PYENV = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"


def interpreter(tmp_path: Path, minor: int) -> Path:
    """A real Python 3.<minor> (pyenv's) when there is one, else a script answering the
    bootstrap's version question as that interpreter would."""
    real = sorted(PYENV.glob(f"3.{minor}.*/bin/python3.{minor}"))
    if real:
        return real[-1]
    if minor == sys.version_info[1]:
        return Path(sys.executable)
    fake = tmp_path / f"fake-python3.{minor}"
    fake.write_text(f"#!{BASH}\necho '3 {minor}'\n")
    fake.chmod(0o755)
    return fake


def fake_bin(tmp_path: Path, *, uid: int = 0, apt: str | None = "works") -> Path:
    """PATH for the bootstrap: python3 is a 3.10, `id -u` says UID, apt-get as asked."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(interpreter(tmp_path, 10))
    (bin_dir / "id").write_text(f"#!{BASH}\necho {uid}\n")
    if apt is not None:
        python311 = interpreter(tmp_path, 11)
        install = f'{shutil.which("ln") or "/bin/ln"} -sf "{python311}" "{bin_dir}/python3.11"' if apt == "works" else "exit 100"
        (bin_dir / "apt-get").write_text(
            f'#!{BASH}\necho "$*" >> "{tmp_path}/apt.log"\n'
            f'if [ "$1" = install ]; then {install}; fi\n')
    for tool in bin_dir.iterdir():
        if not tool.is_symlink():
            tool.chmod(0o755)
    return bin_dir


def choose(bin_dir: Path) -> subprocess.CompletedProcess:
    env = {"PATH": str(bin_dir), "HOME": str(bin_dir.parent)}
    return subprocess.run([BASH, str(BOOTSTRAP), "--print-python"], env=env, capture_output=True, text=True,
                          timeout=60)


def apt_calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "apt.log"
    return log.read_text().splitlines() if log.exists() else []


APT_INSTALL = ["update -qq", "install -y -qq python3.11 python3.11-venv"]


def test_root_with_apt_installs_the_distributions_python311(tmp_path):
    proc = choose(fake_bin(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tmp_path / "bin" / "python3.11")
    assert apt_calls(tmp_path) == APT_INSTALL
    assert "installing the distribution's python3.11" in proc.stderr


@pytest.mark.parametrize("uid, apt", [(1000, "works"), (0, None), (0, "fails")],
                         ids=["not-root", "no-apt-get", "apt-get-fails"])
def test_otherwise_one_line_says_what_to_install(tmp_path, uid, apt):
    proc = choose(fake_bin(tmp_path, uid=uid, apt=apt))
    assert proc.returncode == 1 and proc.stdout == ""
    last = proc.stderr.strip().splitlines()[-1]
    assert "needs Python 3.11 or newer (python3 is 3.10)" in last
    assert ("apt-get install python3.11 python3.11-venv" in last) == (apt is not None)
    assert apt_calls(tmp_path) == (APT_INSTALL if apt == "fails" else [])


def test_a_python311_on_path_is_taken_as_it_is(tmp_path):
    bin_dir = fake_bin(tmp_path)
    (bin_dir / "python3").unlink()
    (bin_dir / "python3").symlink_to(interpreter(tmp_path, 11))
    proc = choose(bin_dir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(bin_dir / "python3")
    assert apt_calls(tmp_path) == []
