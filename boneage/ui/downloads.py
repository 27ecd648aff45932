"""The Predict page's downloads (JSON, CSV, PDF): built from the result on screen at the moment of the click.

Decisions (issue 10, item 6, "downloads equal the screen"):

- **Built at the click, from the holder the page publishes to.** A download made in one run used to carry
  that run's data: type a new height and click "Download PDF report" at once, and the PDF carried the
  previous height. Every download reads :class:`LiveResult`: a run marks it stale when it begins
  (:meth:`LiveResult.begin`), and a download waits until the run has published what it shows.
- **Served by our own route, not ``st.download_button``.** A callable ``st.download_button`` is registered
  under a fresh placeholder id on every run, and a rerun drops the previous run's id as soon as it redraws
  the button. The click that ends the typing starts such a rerun, so when the rerun finished before the
  click's file request was served, the download failed (``MediaFileStorageError: Deferred file … not
  found``; seen in the fresh-clone browser run of 2026-11-27, after passing 4 of 5 times). Our route's
  address is fixed for the session (``boneage-download/<token>/<kind>``, a 128-bit secret per browser
  session), so a link drawn by any run stays valid; ``app.py`` mounts it (``st.App(routes=routes())``).
- **A fallback where the route is not mounted** (``streamlit run streamlit_app.py``, and Streamlit's
  AppTest): the same builders behind ``st.download_button``, with the race above.
"""
from __future__ import annotations

import html
import json
import secrets
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import streamlit as st

from ..app_routes import ROUTE_PREFIX, mounted

_sessions: "weakref.WeakValueDictionary[str, LiveResult]" = weakref.WeakValueDictionary()
_sessions_lock = threading.Lock()


class LiveResult:
    """The result this session's page shows *now*.

    One race is left even with a fixed address: the browser sends the typed value (a rerun) *before*
    the click's file request, but the request can be served before the rerun's script thread has
    reached :meth:`begin`, so the previous result went out (measured: 140.0 cm instead of 152.5 cm).
    So a download first gives a rerun a short grace (:data:`RERUN_GRACE_S`) to begin; when one
    begins, it waits for that run's result, and otherwise serves the result on screen.
    """

    RERUN_GRACE_S = 0.75  # a rerun requested just before the click starts within milliseconds on an idle server

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._result: tuple | None = None
        self._runs = 0
        self.token = secrets.token_urlsafe(16)
        with _sessions_lock:
            _sessions[self.token] = self

    def begin(self) -> None:
        with self._cond:
            self._result = None
            self._runs += 1
            self._cond.notify_all()

    def publish(self, pred, src, patient_id: str | None = None, accession_number: str | None = None) -> None:
        with self._cond:
            self._result = (pred, src, patient_id, accession_number)
            self._cond.notify_all()

    def current(self, timeout: float = 60.0, grace: float | None = None) -> tuple:
        with self._cond:
            runs = self._runs
            self._cond.wait_for(lambda: self._runs != runs, self.RERUN_GRACE_S if grace is None else grace)
            if not self._cond.wait_for(lambda: self._result is not None, timeout):
                raise RuntimeError("the page shows no result any more; download again from the page")
            return self._result


def live_result() -> LiveResult:
    """This session's :class:`LiveResult` (created on first use)."""
    if "_live_result" not in st.session_state:
        st.session_state["_live_result"] = LiveResult()
    return st.session_state["_live_result"]


def session_result(token: str) -> LiveResult | None:
    """The live result a download link names; None once its session has ended (or for a made-up token)."""
    with _sessions_lock:
        return _sessions.get(token)


# ------------------------------------------------------------------------------------------- builders
def prediction_record(pred, name: str) -> dict:
    return {"file": name, **pred.to_dict()}


def prediction_csv(record: dict) -> str:
    flat = {}
    for k, v in record.items():
        if isinstance(v, dict):
            for kk, vv in v.items():
                flat[f"{k}.{kk}"] = json.dumps(vv) if isinstance(vv, (dict, list)) else vv
        elif isinstance(v, list):
            flat[k] = " | ".join(map(str, v))
        else:
            flat[k] = v
    return pd.DataFrame([flat]).to_csv(index=False)


def _json(pred, src, patient_id, accession_number) -> bytes:
    return json.dumps(prediction_record(pred, src.name), indent=2, default=str).encode()


def _csv(pred, src, patient_id, accession_number) -> bytes:
    return prediction_csv(prediction_record(pred, src.name)).encode()


def _pdf(pred, src, patient_id, accession_number) -> bytes:
    from .results import cached_pdf

    key = f"{src.digest}:{patient_id}:{accession_number}:" \
          f"{json.dumps(prediction_record(pred, src.name), sort_keys=True, default=str)}"
    return cached_pdf(key, pred, src.name, patient_id, accession_number)


@dataclass(frozen=True)
class Kind:
    label: str
    suffix: str
    mime: str
    build: Callable[..., bytes]
    icon: str


KINDS = {
    "json": Kind("Download JSON", "_boneage.json", "application/json", _json, ":material/download:"),
    "csv": Kind("Download CSV", "_boneage.csv", "text/csv", _csv, ":material/download:"),
    "pdf": Kind("Download PDF report", "_boneage_report.pdf", "application/pdf", _pdf, ":material/picture_as_pdf:"),
}


def file_name(src_name: str, kind: str) -> str:
    return (Path(src_name).stem or "boneage") + KINDS[kind].suffix


def build(live: LiveResult, kind: str) -> tuple[bytes, str]:
    """(file bytes, file name) for what the page shows at this moment."""
    pred, src, patient_id, accession_number = live.current()
    return KINDS[kind].build(pred, src, patient_id, accession_number), file_name(src.name, kind)


# ---------------------------------------------------------------------------------------------- widgets
_LINK_STYLE = ("display:flex;align-items:center;justify-content:center;gap:0.4rem;width:100%;box-sizing:border-box;"
               "min-height:2.5rem;padding:0.25rem 0.75rem;border:1px solid rgba(49,51,63,0.2);border-radius:0.5rem;"
               "text-decoration:none;color:inherit;font-weight:400;background:transparent")


def download_row(live: LiveResult, src_name: str) -> None:
    """JSON, CSV and PDF downloads in three columns: our route's links, or Streamlit's buttons without it."""
    cols = st.columns(len(KINDS))
    for col, (kind, k) in zip(cols, KINDS.items()):
        name = file_name(src_name, kind)
        if mounted():
            col.html(f'<a data-testid="boneageDownload" href="{ROUTE_PREFIX}/{live.token}/{kind}" download="{html.escape(name)}" '
                     f'style="{_LINK_STYLE}">&#x2B07;&#xFE0E; {k.label}</a>')
        else:
            col.download_button(k.label, lambda kind=kind: build(live, kind)[0], name, k.mime, icon=k.icon,
                                width="stretch", on_click="ignore")
