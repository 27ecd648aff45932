"""boneage app: ``streamlit run app.py``. Research software, not a medical device.

The server: Streamlit serving ``streamlit_app.py`` (the pages) plus one route of our own, the pages'
downloads (Predict, Follow-up), so that a download is always built from what the page shows at the moment
of the click (``boneage/ui/downloads.py`` says why Streamlit's download button could not do that).
"""
import contextlib

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from boneage.app_routes import routes

# streamlit_app.py lays the pages out with st.navigation. Streamlit still treats a folder named
# pages/ beside it as old-style pages until that script has run once in the server, so a browser
# that opened /predict first (a bookmark, a link) ran pages/predict.py alone: no page settings,
# no sidebar, no model loading at start, and Streamlit's Keras reset after every run (measured
# 2026-11-28: the first result waited 11-13 s for the model). Navigation is st.navigation's from
# the start; tests/test_app.py checks that this flag still exists.
PagesManager.uses_pages_directory = False



@contextlib.asynccontextmanager
async def _lifespan(_app):
    """At server start, before any browser connects: the model loads and warms up in the background
    (≈ 17 s on 2 busy cores), so even the first visitor's first reading does not wait for it.
    Streamlit's runtime is running here, so the UI's caches are the ones the pages use (imported at
    module level, they would be registered without a runtime). streamlit_app.py calls the same two
    functions, which do nothing the second time, for ``streamlit run streamlit_app.py``."""
    from boneage import ui

    ui.keep_keras_session()
    ui.start_model_load()
    yield


app = st.App("streamlit_app.py", routes=routes(), lifespan=_lifespan)
