"""Quiet and offline by default: the app's settings that keep the log clean and nothing leaving the machine.

The browser test (tests/test_browser.py) checks the requests themselves; this checks the settings
behind them, in a second, without a browser.
"""
from __future__ import annotations

import pytest

from boneage.paths import APP_ICON, REPO_ROOT

tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads TOML without a package")

CONFIG = tomllib.loads((REPO_ROOT / ".streamlit" / "config.toml").read_text())


def test_no_usage_statistics_and_no_email_prompt():
    assert CONFIG["browser"]["gatherUsageStats"] is False
    assert CONFIG["server"]["showEmailPrompt"] is False


def test_file_watcher_off_for_normal_runs():
    """Watching the checkout filled the log with "Inotify queue overflowed" lines."""
    assert CONFIG["server"]["fileWatcherType"] == "none"


def test_page_icon_is_a_local_file():
    """A ":material/…" page icon is fetched from fonts.gstatic.com on every page load."""
    app = (REPO_ROOT / "streamlit_app.py").read_text()
    assert "page_icon=str(APP_ICON)" in app and ":material/" not in app.split("set_page_config", 1)[1].split(")")[0]
    assert APP_ICON.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
