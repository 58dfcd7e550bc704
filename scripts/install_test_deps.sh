#!/usr/bin/env bash
# Test-only system packages from Debian: chromium (the browser test of `--display web`) and
# strace (the privacy test's check that native code opens no socket beyond loopback).
# Idempotent: installs only what is missing from PATH. Without root or apt-get it only says
# so (those tests then skip with the reason).
set -euo pipefail

missing=()
for tool in chromium strace; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "install_test_deps: installing Debian's ${missing[*]} (for the browser and the no-network tests)"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
    echo "install_test_deps: could not install ${missing[*]}; the tests that need them will be skipped" >&2
    exit 0
  fi
  for tool in "${missing[@]}"; do
    echo "install_test_deps: $("$tool" --version 2>/dev/null | head -n 1 || echo "$tool installed")"
  done
else
  echo "install_test_deps: ${missing[*]} missing and apt-get is not usable as root here;" \
       "install them (apt-get install ${missing[*]}) or the tests that need them will be skipped" >&2
fi
