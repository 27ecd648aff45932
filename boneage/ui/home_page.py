"""Helpers of the Home page (``pages/home.py``): the sample gallery and page links."""
from __future__ import annotations

import streamlit as st

from .images import thumbnail
from .inputs import samples

ATTRIBUTION = ("Sample radiographs: RSNA Pediatric Bone Age Machine Learning Challenge 2017 (Halabi SS et al., "
               "Radiology 2019;290(2):498–503), redistributed for non-commercial research and education.")


def page_link(page: str, label: str, icon: str | None = None) -> None:
    """``st.page_link``, or plain text when the page runs on its own (outside ``app.py``'s navigation)."""
    from streamlit.errors import StreamlitAPIException

    try:
        st.page_link(page, label=label, icon=icon)
    except StreamlitAPIException:
        st.markdown(f"{label} (open the app with `streamlit run app.py`)")


def sample_gallery(columns: int = 4) -> str | None:
    """Thumbnails of the bundled samples, each with a button; returns the id clicked."""
    clicked = None
    ss = samples()
    for row in range(0, len(ss), columns):
        cols = st.columns(columns)
        for col, s in zip(cols, ss[row : row + columns]):
            with col:
                st.image(thumbnail(s.path), caption=s.label, width="stretch")
                if st.button("Read bone age", key=f"gallery_{s.id}", width="stretch", icon=":material/play_arrow:"):
                    clicked = s.id
    st.caption(ATTRIBUTION)
    return clicked
