"""Helpers of the Model page (``pages/model.py``): the model folder's files and the architecture."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import streamlit as st

from .state import _load_predictor, _model_key, get_predictor, model_dir, model_identity, model_meta, read_json

log = logging.getLogger("boneage.ui")


def render_mapping(d, level: int = 0) -> None:
    """A JSON document (model card, benchmarks) as headed sections and bullet lists."""
    if not isinstance(d, dict):
        st.write(d)
        return
    flat = {k: v for k, v in d.items() if not isinstance(v, (dict, list))}
    if flat:
        st.markdown("\n".join(f"- **{str(k).replace('_', ' ')}**: {v}" for k, v in flat.items()))
    for k, v in d.items():
        if isinstance(v, dict):
            st.markdown(f"{'#' * min(6, 4 + level)} {str(k).replace('_', ' ').capitalize()}")
            render_mapping(v, level + 1)
        elif isinstance(v, list):
            st.markdown(f"{'#' * min(6, 4 + level)} {str(k).replace('_', ' ').capitalize()}")
            if v and all(isinstance(x, dict) for x in v):
                st.dataframe(pd.DataFrame(v), hide_index=True)
            else:
                st.markdown("\n".join(f"- {x}" for x in v) or "_none_")


def show_benchmarks(data: dict) -> None:
    """``benchmarks.json`` as one table per benchmark script, figures in words with their units."""
    from ..benchmarks import sections

    for sec in sections(data):
        st.markdown(f"##### {sec.title}")
        if sec.figures:
            st.dataframe(pd.DataFrame([{"figure": f.label, "value": f.value} for f in sec.figures]), hide_index=True,
                         width="stretch")
        for t in sec.tables:
            st.caption(t.title)
            st.dataframe(pd.DataFrame(t.rows, columns=t.columns), hide_index=True, width="stretch")


def epochs_trained(card: dict | None, history: pd.DataFrame | None) -> tuple[int | None, str | None]:
    """(epochs of every network in the bundle, a line saying how they split) for the Model page:
    ``model.keras``'s phases from the card (or its history), plus each ensemble member's own."""
    card = card or {}
    phases = (card.get("training") or {}).get("phases") or []
    members = card.get("ensemble") or []
    own = sum(p.get("epochs_run") or 0 for p in phases) or (None if history is None else len(history))
    if own is None:
        return None, None
    notes = [f"model.keras: {own} epochs in {len(phases)} phases (the curves show its last)." if len(phases) > 1 else None,
             *(f"{m['file']}: {m['epochs_run']} more epochs, fine-tuned from it." for m in members if m.get("epochs_run"))]
    return own + sum(m.get("epochs_run") or 0 for m in members), " ".join(filter(None, notes)) or None


def tta_copies(meta: dict) -> int:
    """The bundle's TTA count, as :class:`boneage.bundle.TTASpec` reads it (8 without the section;
    a malformed one also shows as 8 here, while loading the model says what is wrong, in one line)."""
    from .. import bundle

    try:
        return bundle.TTASpec.from_meta(bundle.BundleMeta.from_dict(meta)).copies
    except bundle.BundleError:
        return bundle.DEFAULT_TTA_COPIES


def model_files() -> dict:
    """What the model folder holds; each entry None when its file is absent or unreadable."""
    d = model_dir()
    history = None
    if (d / "history.csv").is_file():
        try:
            history = pd.read_csv(d / "history.csv")
        except Exception:  # noqa: BLE001 - a damaged file is shown as absent, with the others
            log.warning("unreadable %s", d / "history.csv")
    readme = (d / "README.md").read_text(encoding="utf-8", errors="replace") if (d / "README.md").is_file() else None
    return {"dir": d, "meta": model_meta(), "card": read_json(d / "card.json"), "readme": readme,
            "history": history if history is not None and len(history) else None,
            "benchmarks": read_json(d / "benchmarks.json"), "metrics": read_json(d / "metrics.json")}


@st.cache_data(show_spinner=False, max_entries=2)
def _architecture(model: str) -> dict:
    net = _load_predictor(*_model_key()).model
    lines: list[str] = []
    net.summary(print_fn=lambda s, **_: lines.append(s), line_length=110)
    trainable = int(sum(np.prod(w.shape) for w in net.trainable_weights))
    return {"name": net.name, "params": int(net.count_params()), "trainable": trainable, "layers": len(net.layers),
            "inputs": ", ".join(f"{i.name} {tuple(i.shape)}" for i in net.inputs), "text": "\n".join(lines)}


def architecture_summary() -> dict:
    """Name, parameter counts and Keras's layer summary of the model in use."""
    get_predictor()
    with st.spinner("Summarising the architecture…"):
        return _architecture(model_identity())
