"""Home: the demo story — what bone age is, one click to read a sample, how well the model does, where it fails."""
import streamlit as st

from boneage import ui

st.title("boneage")
st.markdown("#### Bone age from a child's hand X-ray, on a plain laptop, offline")

with ui.guard("Home"):
    what, why = st.columns(2, gap="large")
    with what:
        st.markdown("**What bone age is.** As a child grows, the bones of the hand and wrist mature in a known "
                    "order: new centres appear, growth plates narrow and finally fuse. A radiologist compares an "
                    "X-ray of the left hand with a reference atlas (Greulich & Pyle) and reads the age that skeleton "
                    "matches: the *bone age*.")
    with why:
        st.markdown("**Why it matters.** A bone age well behind or ahead of the child's real age points to growth "
                    "or hormone problems (growth-hormone deficiency, early or late puberty) and tells how much "
                    "growth is left, which is used to predict adult height. Reading it by eye takes minutes per film "
                    "and two readers often differ by several months.")

    st.subheader("Try it: one click reads a sample")
    st.caption("Six radiographs from the RSNA challenge set, each with the radiologist's reading. Click one: the "
               "model reads it (the first reading also loads the model) and shows its estimate beside the radiologist's, with "
               "its uncertainty and where it looked.")
    with st.spinner("Loading the sample radiographs…"):
        clicked = ui.sample_gallery()
    if clicked is not None:
        st.session_state["demo_sample"] = clicked
        st.switch_page("pages/predict.py")

    st.subheader("How well it works")
    acc = ui.accuracy()
    if acc is None:
        st.info("The model in use has no model card with measured accuracy (card.json); see the Model page.",
                icon=":material/info:")
    else:
        k = st.columns(3)
        k[0].metric("Average error, validation", f"{acc.validation_mae:.2f} months",
                    help=f"Mean absolute difference from the radiologist on {acc.validation_n:,} validation "
                         "radiographs the model never trained on, through the full prediction path.")
        if acc.hires_mae is not None:
            k[1].metric("Average error, full-size films", f"{acc.hires_mae:.2f} months",
                        help=f"The same on {acc.hires_n} full-size radiographs, never used for training or choices.")
        if acc.worst_band is not None:
            band, mae = acc.worst_band
            k[2].metric(f"Average error, ages {band.replace('-', '–').replace(' y', ' years')} (hardest)",
                        f"{mae:.1f} months",
                        help="Validation error by the radiologist's bone age; the Dataset page breaks it down further.")
        st.markdown(f"On average the model is **{acc.validation_mae:.2f} months** from the radiologist: close "
                    "enough to be useful for research and teaching, not for a diagnosis. Errors of a year or more "
                    "happen, mostly on films the preprocessing misreads (a grey light-box around the hand taken "
                    "for the hand, a film edge steering the rotation). The six samples above are clean films, so they read better than average.")
    c1, c2, c3 = st.columns(3)
    with c1:
        ui.page_link("pages/dataset.py", "See where the model fails", ":material/query_stats:")
    with c2:
        ui.page_link("pages/model.py", "Model card: data, training, speed", ":material/model_training:")
    with c3:
        ui.page_link("pages/predict.py", "Read your own radiograph", ":material/upload:")

    st.warning("**Research software, not a medical device.** It has learnt from one public data set (one "
               "reader's labels, small images) and must never be used to diagnose or to decide treatment. "
               "Everything runs on this machine: no image or result leaves it.",
               icon=":material/health_and_safety:")
