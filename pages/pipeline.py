"""Pipeline: every preprocessing stage of one radiograph, with adjustable parameters."""
import streamlit as st

from boneage import ui
from boneage.pipeline import DENOISE_METHODS, THRESHOLD_METHODS, PipelineParams

st.title("Preprocessing pipeline")
st.caption("Every stage the model's input goes through, in order, with what it measured. "
           "Change the parameters to see their effect; the model always uses its own trained settings.")

with ui.guard("Pipeline"):
    src = ui.image_source("pipeline")
    if src is None:
        st.info("Upload a radiograph or choose **Use a sample** above.", icon=":material/upload_file:")
        st.stop()
    base = ui.model_pipeline_params()
    with st.container(border=True):
        c1, c2, c3, c4 = st.columns(4)
        clip = c1.slider("CLAHE clip limit", 0.5, 8.0, float(base.clahe_clip), 0.5, key="pl_clip")
        tiles = c2.slider("CLAHE tiles (n × n)", 1, 16, int(base.clahe_tiles), 1, key="pl_tiles")
        thr = c3.radio("Threshold", THRESHOLD_METHODS, index=THRESHOLD_METHODS.index(base.threshold)
                       if base.threshold in THRESHOLD_METHODS else 0, horizontal=True, key="pl_threshold")
        den = c4.selectbox("Denoise", DENOISE_METHODS, index=DENOISE_METHODS.index(base.denoise)
                           if base.denoise in DENOISE_METHODS else 0, key="pl_denoise")
    params = PipelineParams.from_dict(base.to_dict() | dict(clahe_clip=clip, clahe_tiles=tiles, threshold=thr,
                                                             denoise=den))
    if params != base:
        st.caption("Parameters differ from the model's trained settings: the stages below show the effect, "
                   "but predictions keep the trained ones.")
    with st.spinner("Running the pipeline…"):
        ui.load(src)
        res = ui.run_pipeline_cached(src, params)
    ui.show_pipeline(res)
