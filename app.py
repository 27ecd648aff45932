"""boneage app: ``streamlit run app.py``. Research software, not a medical device.

The server: Streamlit serving ``streamlit_app.py`` (the pages) plus one route of our own, the pages'
downloads (Predict, Follow-up), so that a download is always built from what the page shows at the moment
of the click (``boneage/ui/downloads.py`` says why Streamlit's download button could not do that).
"""
import streamlit as st

from boneage.app_routes import routes

app = st.App("streamlit_app.py", routes=routes())
