"""The app's downloads (Predict: JSON, CSV, PDF; Follow-up: JSON, PDF): built from what the page shows at the
moment of the click.

Decisions (issue 10, item 6, "downloads equal the screen"):

- **Built at the click, from the holder the page publishes to.** A download made in one run used to carry
  that run's data: type a new height and click "Download PDF report" at once, and the PDF carried the
  previous height. Each page has a :class:`LiveDownloads`: a run marks it stale when it begins
  (:meth:`LiveDownloads.begin`) and publishes its files (builders, run only when clicked) once it shows
  its result; a download waits until the run has published.
- **Served by our own route, not ``st.download_button``.** A callable ``st.download_button`` is registered
  under a fresh placeholder id on every run, and a rerun drops the previous run's id as soon as it redraws
  the button. The click that ends the typing starts such a rerun, so when the rerun finished before the
  click's file request was served, the download failed (``MediaFileStorageError: Deferred file … not
  found``; seen in the fresh-clone browser run of 2026-11-27, after passing 4 of 5 times). Our route's
  address is fixed for the page in its browser session (``boneage-download/<token>/<kind>``, a 128-bit
  secret, dropped with the session), so a link drawn by any run stays valid; ``app.py`` mounts it
  (:func:`boneage.app_routes.routes`).
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

_sessions: "weakref.WeakValueDictionary[str, LiveDownloads]" = weakref.WeakValueDictionary()
_sessions_lock = threading.Lock()


@dataclass(frozen=True)
class File:
    """One download a page offers: what the button says and a builder run only when it is clicked."""

    label: str
    name: str
    mime: str
    build: Callable[[], bytes | str]
    icon: str = ":material/download:"


class LiveDownloads:
    """The files one page of this session offers *now*.

    One race is left even with a fixed address: the browser sends the typed value (a rerun) *before*
    the click's file request, but the request can be served before the rerun's script thread has
    reached :meth:`begin`, so the previous result went out (measured: 140.0 cm instead of 152.5 cm).
    So a download first gives a rerun a short grace (:data:`RERUN_GRACE_S`) to begin; when one
    begins, it waits for that run's files, and otherwise serves the files on screen.
    """

    RERUN_GRACE_S = 0.75  # a rerun requested just before the click starts within milliseconds on an idle server
    PUBLISH_TIMEOUT_S = 60.0  # the longest a run may take to show its result (a cold full-size read takes seconds)

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._files: dict[str, File] | None = None
        self._runs = 0
        self.token = secrets.token_urlsafe(16)
        with _sessions_lock:
            _sessions[self.token] = self

    def begin(self) -> None:
        """A run of the page starts: what it showed before is no longer on screen."""
        with self._cond:
            self._files = None
            self._runs += 1
            self._cond.notify_all()

    def publish(self, files: dict[str, File]) -> None:
        """The run shows its result: these are the files it offers (keyed by the link's last part)."""
        with self._cond:
            self._files = dict(files)
            self._cond.notify_all()

    def current(self, kind: str, timeout: float | None = None, grace: float | None = None) -> File:
        """The file ``kind`` as the page shows it once any rerun begun within the grace has published.

        Raises ``KeyError`` when the page offers no such file, ``RuntimeError`` when it shows no result."""
        with self._cond:
            runs = self._runs
            self._cond.wait_for(lambda: self._runs != runs, self.RERUN_GRACE_S if grace is None else grace)
            if not self._cond.wait_for(lambda: self._files is not None,
                                       self.PUBLISH_TIMEOUT_S if timeout is None else timeout):
                raise RuntimeError("the page shows no result any more; download again from the page")
            return self._files[kind]


def live_downloads(page: str) -> LiveDownloads:
    """This session's :class:`LiveDownloads` for ``page`` (created on first use)."""
    key = f"_live_downloads_{page}"
    if key not in st.session_state:
        st.session_state[key] = LiveDownloads()
    return st.session_state[key]


def session_downloads(token: str) -> LiveDownloads | None:
    """The page a download link names; None once its session has ended (or for a made-up token)."""
    with _sessions_lock:
        return _sessions.get(token)


def build(live: LiveDownloads, kind: str) -> tuple[bytes, File]:
    """(bytes, file) for the download ``kind`` as the page shows it at this moment."""
    f = live.current(kind)
    data = f.build()
    return (data.encode() if isinstance(data, str) else data), f


# ------------------------------------------------------------------------------------------- Predict
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


def prediction_files(pred, src, patient_id: str | None = None, accession_number: str | None = None
                     ) -> dict[str, File]:
    """The Predict page's JSON, CSV and PDF of one reading."""
    from .results import cached_pdf

    stem = Path(src.name).stem or "boneage"
    record = lambda: prediction_record(pred, src.name)  # noqa: E731  (built at the click)

    def pdf() -> bytes:
        key = f"{src.digest}:{patient_id}:{accession_number}:{json.dumps(record(), sort_keys=True, default=str)}"
        return cached_pdf(key, pred, src.name, patient_id, accession_number)

    return {
        "json": File("Download JSON", f"{stem}_boneage.json", "application/json",
                     lambda: json.dumps(record(), indent=2, default=str)),
        "csv": File("Download CSV", f"{stem}_boneage.csv", "text/csv", lambda: prediction_csv(record())),
        "pdf": File("Download PDF report", f"{stem}_boneage_report.pdf", "application/pdf", pdf,
                    ":material/picture_as_pdf:"),
    }


# ---------------------------------------------------------------------------------------------- widgets
_LINK_STYLE = ("display:flex;align-items:center;justify-content:center;gap:0.4rem;width:100%;box-sizing:border-box;"
               "min-height:2.5rem;padding:0.25rem 0.75rem;border:1px solid rgba(49,51,63,0.2);border-radius:0.5rem;"
               "text-decoration:none;color:inherit;font-weight:400;background:transparent")


def download_row(live: LiveDownloads, files: dict[str, File]) -> None:
    """Publish ``files`` and offer them in one row: our route's links, or Streamlit's buttons without it."""
    live.publish(files)
    cols = st.columns(len(files))
    for col, (kind, f) in zip(cols, files.items()):
        if mounted():
            col.html(f'<a data-testid="boneageDownload" href="{ROUTE_PREFIX}/{live.token}/{kind}" '
                     f'download="{html.escape(f.name)}" style="{_LINK_STYLE}">&#x2B07;&#xFE0E; {html.escape(f.label)}</a>')
        else:
            col.download_button(f.label, lambda kind=kind: build(live, kind)[0], f.name, f.mime, icon=f.icon,
                                width="stretch", on_click="ignore")
