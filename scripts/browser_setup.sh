#!/usr/bin/env bash
# Installs what the real-browser test (tests/test_browser.py, marker "browser") needs:
# Debian's Chromium (apt; no browser download) and the playwright Python package (pinned).
# Idempotent: each part is skipped when already present. Needs root (or sudo) for apt.
#   PYTHON=.venv/bin/python scripts/browser_setup.sh
set -euo pipefail

PYTHON="${PYTHON:-python3}"
PLAYWRIGHT_VERSION="1.65.2"
CHROMIUM="${BONEAGE_CHROMIUM:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
  echo "chromium: present ($("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM"))"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "chromium: installing with apt-get"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
  echo "chromium: $("$CHROMIUM" --version)"
fi

have=$("$PYTHON" -c "import importlib.metadata as m; print(m.version('playwright'))" 2>/dev/null || true)
if [ "$have" = "$PLAYWRIGHT_VERSION" ]; then
  echo "playwright: $have present"
else
  echo "playwright: installing $PLAYWRIGHT_VERSION (no browser download; the tests use $CHROMIUM)"
  "$PYTHON" -m pip install -q "playwright==$PLAYWRIGHT_VERSION"
fi
