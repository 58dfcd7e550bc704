#!/usr/bin/env bash
# Create the main environment (.venv) with a Python >= 3.11 and install oakpipe into it.
# Idempotent: an existing .venv is reused and pip only adds what is missing.
#
# Without a Python 3.11+ on PATH (Ubuntu 22.04, whose python3 is 3.10), it installs the
# distribution's python3.11 and python3.11-venv with apt-get when it runs as root, and
# otherwise says in one line what to install.
#   bootstrap.sh [VENV]          choose (or install) the interpreter, create VENV, install oakpipe
#   bootstrap.sh --print-python  only choose (or install) the interpreter and print its path
set -euo pipefail

MIN_MINOR=11  # Python 3.11: the oldest the pinned wheels and the tests are checked on

python_version() {  # "3 10" for a Python 3.10 interpreter; fails for anything else
  "$1" -c 'import sys; print("%d %d" % sys.version_info[:2])' 2>/dev/null
}

python_ok() {
  local major minor
  read -r major minor < <(python_version "$1") || return 1
  [ "$major" = 3 ] && [ "$minor" -ge "$MIN_MINOR" ]
}

find_python() {
  local candidate path
  for candidate in python3.11 python3.12 python3.13 python3.14 python3; do
    path=$(command -v "$candidate" 2>/dev/null) || continue
    if python_ok "$path"; then
      echo "$path"; return 0
    fi
  done
  return 1
}

can_apt() {
  command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]
}

install_distribution_python() {
  echo "bootstrap: no Python 3.11 or newer on PATH; installing the distribution's python3.11 (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq python3.11 python3.11-venv >/dev/null
}

missing_python_message() {
  local found="none" path version
  if path=$(command -v python3 2>/dev/null) && version=$(python_version "$path"); then
    found="python3 is ${version/ /.}"
  fi
  if command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: oakpipe needs Python 3.11 or newer ($found): run 'sudo apt-get install python3.11 python3.11-venv', then this again"
  else
    echo "bootstrap: oakpipe needs Python 3.11 or newer ($found): install python3.11 (your distribution's package, pyenv or uv), then run this again"
  fi
}

choose_python() {
  find_python && return 0
  if can_apt && install_distribution_python && find_python; then
    return 0
  fi
  missing_python_message >&2
  return 1
}

create_venv() {  # $1 interpreter, $2 folder; adds Debian's pythonX.Y-venv when ensurepip is missing
  local python=$1 venv=$2 major minor
  "$python" -m venv "$venv" 2>/dev/null && return 0
  rm -rf "$venv"
  read -r major minor < <(python_version "$python")
  if can_apt; then
    echo "bootstrap: installing Debian's python$major.$minor-venv (needed for virtual environments)"
    apt-get update -qq && apt-get install -y -qq "python$major.$minor-venv" >/dev/null
    "$python" -m venv "$venv"
  else
    echo "bootstrap: '$python -m venv' failed: install your distribution's python$major.$minor-venv package" >&2
    exit 1
  fi
}

if [ "${1:-}" = "--print-python" ]; then
  choose_python
  exit
fi

venv=${1:-.venv}
if [ ! -x "$venv/bin/python" ]; then
  python=$(choose_python) || exit 1
  create_venv "$python" "$venv"
  echo "bootstrap: created $venv with $("$venv/bin/python" --version)"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
# torch first and pinned. On a machine whose pip would fetch the multi-GB CUDA build, set
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu to take the CPU build instead.
"$venv/bin/python" -m pip install -q torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
"$venv/bin/python" -m pip install -q -e '.[convert,test]'
# Ultralytics (tests build best.pt checkpoints; users bring their own): without its
# opencv-python requirement, which would install a second cv2 over opencv-python-headless.
"$venv/bin/python" -m pip install -q --no-deps 'ultralytics>=8.4,<8.5' 'ultralytics-thop>=2.2.3' \
  "torchvision==0.28.0" ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"}
"$venv/bin/python" -m pip install -q matplotlib psutil polars requests
# depthai-nodes (decoding task models in `run`): its needs (depthai, numpy, OpenCV) are
# installed above; --no-deps keeps its opencv-python-headless~=4.10 pin from downgrading OpenCV.
"$venv/bin/python" -m pip install -q --no-deps 'depthai-nodes>=0.7,<0.8'
echo "bootstrap: oakpipe installed in $venv ($("$venv/bin/oakpipe" --version))"
