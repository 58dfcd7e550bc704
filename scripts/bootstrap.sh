#!/usr/bin/env bash
# Create the main environment (.venv) with a Python >= 3.11 and install oakpipe into it.
# Idempotent: an existing .venv is reused and pip only adds what is missing.
set -euo pipefail
venv=${1:-.venv}

find_python() {
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}

if [ ! -x "$venv/bin/python" ]; then
  python=$(find_python) || { echo "oakpipe needs Python 3.11 or newer (apt-get install python3)" >&2; exit 1; }
  if ! "$python" -m venv "$venv" 2>/dev/null; then
    rm -rf "$venv"
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      echo "bootstrap: installing Debian's python3-venv (needed for virtual environments)"
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      "$python" -m venv "$venv"
    else
      echo "bootstrap: '$python -m venv' failed: install your distribution's python3-venv package" >&2
      exit 1
    fi
  fi
  echo "bootstrap: created $venv with $("$venv/bin/python" --version)"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
# torch first and pinned. On a machine whose pip would fetch the multi-GB CUDA build, set
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu to take the CPU build instead.
"$venv/bin/python" -m pip install -q torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
"$venv/bin/python" -m pip install -q -e '.[test]'
# Ultralytics (tests build best.pt checkpoints; users bring their own): without its
# opencv-python requirement, which would install a second cv2 over opencv-python-headless.
"$venv/bin/python" -m pip install -q --no-deps 'ultralytics>=8.4,<8.5' 'ultralytics-thop>=2.2.3' \
  "torchvision==0.28.0" ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"}
"$venv/bin/python" -m pip install -q matplotlib psutil polars requests
# depthai-nodes (decoding task models in `run`): its needs (depthai, numpy, OpenCV) are
# installed above; --no-deps keeps its opencv-python-headless~=4.10 pin from downgrading OpenCV.
"$venv/bin/python" -m pip install -q --no-deps 'depthai-nodes>=0.7,<0.8'
echo "bootstrap: oakpipe installed in $venv ($("$venv/bin/oakpipe" --version))"
