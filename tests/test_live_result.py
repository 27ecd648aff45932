"""Downloads equal the screen (issue 10, item 6): the holder the download callables read."""
from __future__ import annotations

import threading
import time

import pytest

from boneage.ui.downloads import LiveResult


def test_a_rerun_that_begins_during_the_grace_is_waited_for():
    """The click's file request arrives before the typed value's rerun begins: the new result is served."""
    live = LiveResult()
    live.publish("old", "src")

    def rerun():
        time.sleep(0.1)
        live.begin()
        time.sleep(0.2)  # the page works
        live.publish("new", "src")

    threading.Thread(target=rerun).start()
    assert live.current(grace=1.0)[0] == "new"


def test_without_a_rerun_the_result_on_screen_is_served_after_the_grace():
    live = LiveResult()
    live.publish("shown", "src")
    t0 = time.monotonic()
    assert live.current(grace=0.2)[0] == "shown"
    assert time.monotonic() - t0 >= 0.19


def test_a_run_that_never_publishes_is_an_error_not_a_stale_file():
    live = LiveResult()
    live.publish("old", "src")
    live.begin()
    with pytest.raises(RuntimeError, match="no result any more"):
        live.current(timeout=0.1, grace=0.0)
