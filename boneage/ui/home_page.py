"""Helpers of the Home page (``pages/home.py``): the accuracy figures, the sample gallery and page links."""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from .images import thumbnail
from .inputs import samples
from .state import model_dir, read_json
from ..vocab import format_age, sex_word

ATTRIBUTION = ("Sample radiographs: RSNA Pediatric Bone Age Machine Learning Challenge 2017 (Halabi SS et al., "
               "Radiology 2019;290(2):498–503), redistributed for non-commercial research and education.")


@dataclass(frozen=True)
class Accuracy:
    """The shipped model's measured mean absolute errors (months), read from its card (never typed in)."""

    validation_mae: float
    validation_n: int
    hires_mae: float | None
    hires_n: int | None
    worst_band: tuple[str, float] | None = None  # the age band with the largest validation MAE


def accuracy() -> Accuracy | None:
    """From ``card.json`` of the model in use: validation thumbnails and full-size radiographs, full path with
    TTA (the README's headline figures); None when the model has no card."""
    card = read_json(model_dir() / "card.json") or {}
    val, hires = card.get("validation_thumbnails_full_path_tta") or {}, card.get("hires_40_full_size_path") or {}
    if val.get("mae") is None or not val.get("n"):
        return None
    bands = {k: v for k, v in (val.get("mae_by_age_band") or {}).items() if v is not None}
    worst = max(bands.items(), key=lambda kv: kv[1]) if bands else None
    return Accuracy(float(val["mae"]), int(val["n"]), None if hires.get("mae") is None else float(hires["mae"]),
                    hires.get("n"), worst)


def page_link(page: str, label: str, icon: str | None = None) -> None:
    """``st.page_link``, or plain text when the page runs on its own (outside ``streamlit_app.py``'s navigation)."""
    from streamlit.errors import StreamlitAPIException

    try:
        st.page_link(page, label=label, icon=icon)
    except StreamlitAPIException:
        st.markdown(f"{label} (open the app with `streamlit run app.py`)")


def sample_gallery(columns: int = 6) -> str | None:
    """Thumbnails of the bundled samples (youngest first), each with its reader's bone age and a button;
    returns the id clicked."""
    clicked = None
    ss = samples()
    for row in range(0, len(ss), columns):
        cols = st.columns(columns)
        for col, s in zip(cols, ss[row : row + columns]):
            with col, st.container(border=True):
                st.image(thumbnail(s.path), width="stretch")
                st.markdown(f"**{sex_word(s.sex).capitalize()}**, reader: {format_age(s.boneage_months)}")
                if st.button("Read", key=f"gallery_{s.id}", width="stretch", icon=":material/play_arrow:",
                             type="primary", help="Read the bone age of this radiograph"):
                    clicked = s.id
    st.caption(ATTRIBUTION)
    return clicked
