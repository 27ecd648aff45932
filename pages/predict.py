"""Predict: upload a radiograph (or pick a sample), give sex and age, read the bone age."""
import streamlit as st

from boneage import ui
from boneage.acceptance import NotAcceptedError
from boneage.clinical import ClinicalInputError

st.title("Predict bone age")
st.caption("Upload a hand radiograph or choose a sample. " + ui.NOTICE)

ui.live_downloads("predict").begin()  # downloads clicked while this run works wait for the result it will show

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
        ui.prepare_ahead(src)  # the pipeline runs while the user chooses
        st.stop()
    unusual = st.session_state.get("predict_accept_unusual", False)
    try:
        pred = ui.predict(src, inp.sex, **inp.clinical_kwargs, accept_unusual=unusual)
    except NotAcceptedError as e:
        ui.show_refusal(e)
        st.checkbox("Predict anyway (research use: the result will say it was not accepted)",
                    key="predict_accept_unusual")
        st.stop()
    except ClinicalInputError as e:
        st.error(f"Clinical inputs: {e}. Correct them above for the interpretation; the bone age is shown meanwhile.",
                 icon=":material/error:")
        pred = ui.predict(src, inp.sex, accept_unusual=unusual)
    ui.show_prediction(pred, src, patient_id=inp.patient_id, accession_number=inp.accession_number)
