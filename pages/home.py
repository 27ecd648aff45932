"""Home: what boneage does, and a one-click demo on the bundled sample radiographs."""
import streamlit as st

from boneage import ui

st.title("boneage")
st.markdown(
    "boneage reads a child's hand and wrist radiograph and estimates the **bone age** (skeletal maturity, "
    "Greulich–Pyle), with its uncertainty and a map of where the model looked. "
    "Given the child's age it says whether maturation is delayed, normal or advanced, and can predict adult height."
)
st.caption(ui.NOTICE)

with ui.guard("Home"):
    st.subheader("Try it on a sample")
    st.caption("No file needed: pick a radiograph below to run the full prediction.")
    with st.spinner("Loading the sample radiographs…"):
        clicked = ui.sample_gallery()
    if clicked is not None:
        st.session_state["demo_sample"] = clicked
        st.switch_page("pages/predict.py")
    st.subheader("Or")
    c1, c2, c3 = st.columns(3)
    with c1:
        ui.page_link("pages/predict.py", "Upload your own radiograph", ":material/upload:")
    with c2:
        ui.page_link("pages/pipeline.py", "See the preprocessing pipeline", ":material/account_tree:")
    with c3:
        ui.page_link("pages/dataset.py", "Explore where the model fails", ":material/query_stats:")
