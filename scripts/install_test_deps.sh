#!/usr/bin/env bash
# Test-only system packages: Debian's chromium, for the browser test of `--display web`.
# Idempotent: does nothing when chromium is already on PATH. Without root or apt-get it
# only says so (the browser test then skips with the reason).
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "install_test_deps: installing Debian's chromium (headless browser for the --display web test)"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; then
    echo "install_test_deps: could not install chromium; the browser test will be skipped" >&2
    exit 0
  fi
  echo "install_test_deps: $(chromium --version 2>/dev/null || echo 'chromium installed')"
else
  echo "install_test_deps: chromium is missing and apt-get is not usable as root here;" \
       "install it (apt-get install chromium) or the browser test will be skipped" >&2
fi
