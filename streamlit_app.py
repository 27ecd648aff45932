"""boneage app, the Streamlit script: page configuration, navigation over ``pages/`` and the shared sidebar.

Research software, not a medical device. Start it with ``streamlit run app.py`` (which serves this script
together with the app's own download route); ``streamlit run streamlit_app.py`` also works, with
Streamlit's download buttons in place of that route (see ``boneage/ui/downloads.py``).
"""
import streamlit as st

from boneage import ui
from boneage.paths import APP_ICON

# A local file, not ":material/…": a Material icon as page_icon is fetched from fonts.gstatic.com
# on every page load, and the app must work air-gapped (tests/test_browser.py fails on any such request).
st.set_page_config(page_title="boneage: bone age from a hand X-ray", page_icon=str(APP_ICON), layout="wide")

nav = st.navigation([
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/predict.py", title="Predict", icon=":material/radiology:"),
    st.Page("pages/follow_up.py", title="Follow-up", icon=":material/timeline:"),
    st.Page("pages/pipeline.py", title="Pipeline", icon=":material/account_tree:"),
    st.Page("pages/dataset.py", title="Dataset errors", icon=":material/query_stats:"),
    st.Page("pages/model.py", title="Model", icon=":material/model_training:"),
])
ui.keep_keras_session()  # Streamlit would reset Keras after every run: 0.4 s per rerun, 0.6 s more per prediction
ui.start_model_load()  # in the background now, so the first prediction does not wait ≈ 17 s for it
ui.sidebar()
nav.run()
