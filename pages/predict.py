"""Predict: upload a radiograph (or pick a sample), give sex and age, read the bone age."""
import streamlit as st

from boneage import ui
from boneage.clinical import ClinicalInputError

st.title("Predict bone age")
st.caption("Upload a hand radiograph or choose a sample. " + ui.NOTICE)

with ui.guard("Prediction"):
    src = ui.image_source("predict")
    if src is None:
        st.info("Upload a radiograph (PNG, JPEG, TIFF, 16-bit or DICOM) or choose **Use a sample** above.",
                icon=":material/upload_file:")
        st.stop()
    with st.spinner("Reading the image…"):
        loaded = ui.load(src)
    inp = ui.clinical_inputs(src, loaded.meta)
    if inp.sex is None:
        st.info("Choose the sex: the reference differs for boys and girls.", icon=":material/wc:")
        st.stop()
    try:
        pred = ui.predict(src, inp.sex, **inp.clinical_kwargs)
    except ClinicalInputError as e:
        st.error(f"Clinical inputs: {e}. Correct them above for the interpretation; the bone age is shown meanwhile.",
                 icon=":material/error:")
        pred = ui.predict(src, inp.sex)
    ui.show_prediction(pred, src, patient_id=inp.patient_id, accession_number=inp.accession_number)
