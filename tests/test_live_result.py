"""Downloads equal the screen (issue 10, item 6): the holder the download links read."""
from __future__ import annotations

import threading
import time

import pytest

from boneage.ui.downloads import File, LiveDownloads


def files(text: str) -> dict[str, File]:
    return {"json": File("Download JSON", "x.json", "application/json", lambda: text)}


def test_a_rerun_that_begins_during_the_grace_is_waited_for():
    """The click's file request arrives before the typed value's rerun begins: the new result is served."""
    live = LiveDownloads()
    live.publish(files("old"))

    def rerun():
        time.sleep(0.1)
        live.begin()
        time.sleep(0.2)  # the page works
        live.publish(files("new"))

    threading.Thread(target=rerun).start()
    assert live.current("json", grace=1.0).build() == "new"


def test_without_a_rerun_the_result_on_screen_is_served_after_the_grace():
    live = LiveDownloads()
    live.publish(files("shown"))
    t0 = time.monotonic()
    assert live.current("json", grace=0.2).build() == "shown"
    assert time.monotonic() - t0 >= 0.19


def test_a_run_that_never_publishes_is_an_error_not_a_stale_file():
    live = LiveDownloads()
    live.publish(files("old"))
    live.begin()
    with pytest.raises(RuntimeError, match="no result any more"):
        live.current("json", timeout=0.1, grace=0.0)


def test_a_file_the_page_does_not_offer_is_a_key_error():
    live = LiveDownloads()
    live.publish(files("x"))
    with pytest.raises(KeyError):
        live.current("pdf", grace=0.0)
