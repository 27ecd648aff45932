"""Follow-up: several radiographs (and earlier results) of one child -> bone-age velocity."""
import datetime as dt

import pandas as pd
import streamlit as st

from boneage import ui
from boneage.charts import growth_chart
from boneage.clinical import ClinicalInputError
from boneage.followup import follow_up, one_child
from boneage.ui import follow_up_page as fp
from boneage.vocab import format_age

st.title("Follow-up: bone-age velocity")
st.caption("Several radiographs of one child with their study dates, and/or earlier results (the JSON the "
           "Predict page downloads, or `boneage predict --json`). " + ui.NOTICE)

ui.live_downloads("follow_up").begin()  # downloads clicked while this run works wait for what it will show

with ui.guard("Follow-up"):
    files = st.file_uploader("Radiographs of this child", accept_multiple_files=True, key="fu_upload",
                             help=ui.UPLOAD_HELP)
    earlier_files = st.file_uploader("Earlier results (JSON)", accept_multiple_files=True, key="fu_earlier",
                                     type=["json", "jsonl"])
    sources = fp.radiograph_sources(files)
    earlier = fp.earlier_results(earlier_files)
    for p in earlier.problems:  # shown at once: they need no other input
        st.error(p, icon=":material/error:")
    if not sources and not earlier.visits and not earlier.problems:
        st.info("Upload two or more radiographs of one child, or earlier results and a new radiograph.",
                icon=":material/upload_file:")
        st.stop()

    dicom_sex, dicom_birth = fp.dicom_defaults(sources)
    earlier_sex = earlier.visits[0][1] if earlier.visits else None
    c1, c2 = st.columns(2)
    default_sex = dicom_sex or earlier_sex
    sex = c1.radio("Sex", ("F", "M"), index=("F", "M").index(default_sex) if default_sex else None, horizontal=True,
                   key="fu_sex", format_func=lambda s: "Female" if s == "F" else "Male")
    birth = c2.date_input("Birth date", value=dicom_birth, min_value=fp.EARLIEST_DATE, max_value=dt.date.today(),
                          key="fu_birth", help="With each study date it gives the age at every visit.")
    dates = fp.study_dates(sources)
    if sex is None:
        st.info("Choose the sex: the reference differs for boys and girls.", icon=":material/wc:")
        st.stop()

    read = fp.read_visits(sources, sex, birth, dates)
    visits = earlier.visits + read.visits
    for p in read.problems:
        st.error(p, icon=":material/error:")
    if len(visits) < 2:
        st.info(f"{len(visits)} visit placed so far: the velocity needs at least two.", icon=":material/timeline:")
        st.stop()
    try:
        child_sex = one_child(visits + [(visits[0][0], sex)])
        ordered = [v for v, _ in sorted(visits, key=lambda vs: vs[0].chronological_age_months)]
        fu = follow_up(ordered, child_sex)
    except ClinicalInputError as e:
        st.error(f"Follow-up: {e}", icon=":material/error:")
        st.stop()

    st.subheader("Bone-age velocity")
    st.info(fu.summary(), icon=":material/timeline:")
    m = st.columns(3)
    m[0].metric("Visits", len(fu.visits))
    m[1].metric("Over", format_age(fu.span_months))
    m[2].metric("Velocity (bone-age y per y)", f"{fu.velocity:.2f}"
                + ("" if fu.velocity_sd is None else f" ± {fu.velocity_sd:.2f}"))
    st.caption("Visits are placed in date order. 1.0 means the bone age keeps pace with the calendar.")
    st.dataframe(pd.DataFrame([{
        "visit": v.label, "study date": v.study_date, "age": format_age(v.chronological_age_months),
        "bone age": format_age(v.bone_age_months),
        "± (1 SD, months)": None if v.uncertainty_months is None else round(v.uncertainty_months, 1)}
        for v in fu.visits]), hide_index=True)
    st.dataframe(pd.DataFrame([i.to_dict() for i in fu.intervals]), hide_index=True)
    last = fu.visits[-1]
    st.plotly_chart(growth_chart(child_sex, last.bone_age_months, last.chronological_age_months,
                                 last.uncertainty_months,
                                 visits=[(v.chronological_age_months, v.bone_age_months) for v in fu.visits]),
                    width="stretch")

    latest = read.readings.get(last.label)
    ui.download_row(ui.live_downloads("follow_up"),
                    fp.follow_up_files(fu, latest, next((s for s in sources if s.name == last.label), None)))
    if latest is None:
        st.caption("The PDF report needs the latest visit's radiograph (the latest visit is an earlier result).")
