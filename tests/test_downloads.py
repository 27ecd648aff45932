"""The app's downloads (issue 10, item 6): our own route, built from what the page shows.

The real-browser race (type, then click at once) is in tests/test_browser.py; here: the route's answers,
its headers for hostile upload names, and that ``app.py`` is the ASGI app that mounts it.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from boneage import app_routes
from boneage.ui import downloads
from boneage.ui.downloads import LiveDownloads, prediction_files

REPO = Path(__file__).resolve().parent.parent


class FakePrediction:
    def __init__(self, months: float, height: float | None = None):
        self.months, self.height = months, height

    def to_dict(self) -> dict:
        return {"bone_age_months": self.months, "height_cm": self.height, "accepted": True}


def _src(name: str = "hand.png"):
    return SimpleNamespace(name=name, digest="d" * 16)


@pytest.fixture
def client(monkeypatch):
    monkeypatch.setattr(app_routes, "_mounted", app_routes._mounted)  # routes() sets it: restored afterwards,
    return TestClient(Starlette(routes=app_routes.routes()))          # so later AppTests keep their buttons


def _publish(live: LiveDownloads, pred: FakePrediction, name: str = "hand.png") -> None:
    live.publish(prediction_files(pred, _src(name)))


def _url(live: LiveDownloads, kind: str) -> str:
    return f"/{app_routes.ROUTE_PREFIX}/{live.token}/{kind}"


def test_json_and_csv_carry_the_published_result(client):
    live = LiveDownloads()
    _publish(live, FakePrediction(131.5, 152.5))
    r = client.get(_url(live, "json"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert json.loads(r.content) == {"file": "hand.png", "bone_age_months": 131.5, "height_cm": 152.5,
                                     "accepted": True}
    assert 'filename="hand_boneage.json"' in r.headers["content-disposition"]
    assert r.headers["cache-control"] == "no-store"
    r = client.get(_url(live, "csv"))
    assert r.status_code == 200 and r.text.splitlines()[1] == "hand.png,131.5,152.5,True"


def test_a_rerun_started_around_the_click_is_waited_for(client):
    """The click's request can arrive before the typed value's rerun begins: the rerun's result is served."""
    live = LiveDownloads()
    _publish(live, FakePrediction(120.0, 140.0))

    def rerun():
        time.sleep(0.1)
        live.begin()
        time.sleep(0.3)
        _publish(live, FakePrediction(120.0, 152.5))

    threading.Thread(target=rerun).start()
    assert json.loads(client.get(_url(live, "json")).content)["height_cm"] == 152.5


def test_unknown_session_or_kind_is_a_one_line_404(client):
    live = LiveDownloads()
    _publish(live, FakePrediction(100.0))
    r = client.get(f"/{app_routes.ROUTE_PREFIX}/not-a-session/json")
    assert r.status_code == 404 and r.text == "This download link has expired: reload the page and download again."
    r = client.get(_url(live, "exe"))
    assert r.status_code == 404 and r.text == "This page offers no download 'exe'."


def test_a_page_without_a_result_gives_a_clear_409(client, monkeypatch):
    live = LiveDownloads()
    live.begin()  # a run began and never published (the image was removed)
    monkeypatch.setattr(LiveDownloads, "PUBLISH_TIMEOUT_S", 0.1)
    monkeypatch.setattr(LiveDownloads, "RERUN_GRACE_S", 0.0)
    r = client.get(_url(live, "json"))
    assert r.status_code == 409 and r.text.startswith("Download failed: the page shows no result")


def test_follow_up_files_offer_the_pdf_only_with_the_latest_radiograph():
    from boneage.ui.follow_up_page import follow_up_files

    fu = SimpleNamespace(to_dict=lambda: {"visits": 2, "velocity": 1.1})
    only_json = follow_up_files(fu, None, None)
    assert list(only_json) == ["json"] and json.loads(only_json["json"].build()) == {"visits": 2, "velocity": 1.1}
    both = follow_up_files(fu, object(), _src("visit 2.dcm"))
    assert list(both) == ["json", "pdf"] and both["pdf"].name == "visit 2_follow_up_report.pdf"


def test_an_ended_session_frees_its_link():
    live = LiveDownloads()
    token = live.token
    assert downloads.session_downloads(token) is live
    del live
    import gc

    gc.collect()
    assert downloads.session_downloads(token) is None


@pytest.mark.parametrize("name", ['a"b.png', "x\r\nSet-Cookie: y.png", "../../etc/passwd", "Röntgen händ.png", ""])
def test_hostile_upload_names_never_reach_the_header_raw(name):
    h = app_routes.content_disposition(name)
    assert h.startswith('attachment; filename="') and "\r" not in h and "\n" not in h
    plain = h.split('"')[1]
    assert plain and set(plain) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


def test_tokens_are_unguessable_and_distinct():
    tokens = {LiveDownloads().token for _ in range(50)}
    assert len(tokens) == 50 and all(len(t) >= 20 for t in tokens)


def test_app_py_is_the_asgi_app_that_mounts_the_route():
    """``streamlit run app.py`` must find an st.App (else the page falls back to Streamlit's buttons)."""
    from streamlit.web.server.app_discovery import discover_asgi_app

    found = discover_asgi_app(REPO / "app.py")
    assert found.is_asgi_app and found.import_string.endswith(":app")
    assert "routes=routes()" in (REPO / "app.py").read_text()
