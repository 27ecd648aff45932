"""Dataset errors: where the model fails, from a predictions CSV (``boneage evaluate`` format)."""
import streamlit as st

from boneage import dataset_plots as dp
from boneage import metrics
from boneage import ui
from boneage.vocab import from_male

st.title("Dataset errors")
st.caption("Where the model disagrees with the radiologist's reading. Errors are predicted − true, in months.")

with ui.guard("Dataset errors"):
    default = ui.default_predictions_path()
    up = st.file_uploader("Predictions CSV from `boneage evaluate` (id, boneage_months, male, predicted_months)",
                          type=["csv"], key="ds_upload")
    if up is not None:
        df_all, source = metrics.read_predictions(up.getvalue()), up.name
    elif default.is_file():
        df_all, source = metrics.read_predictions(default), str(default)
    else:
        st.info(f"No validation predictions at `{default}` yet; upload a CSV from `boneage evaluate`.",
                icon=":material/info:")
        st.stop()
    note = f" ({df_all.attrs['n_missing']} rows without a prediction left out)" if df_all.attrs.get("n_missing") else ""
    st.caption(f"Source: `{source}` · {len(df_all)} images{note}")

    with st.container(border=True):
        c1, c2, c3 = st.columns([1, 2, 1])
        sexes = c1.multiselect("Sex", list(metrics.SEXES), default=list(metrics.SEXES), key="ds_sex")
        lo, hi = int(df_all["boneage_months"].min()), int(df_all["boneage_months"].max())
        age = c2.slider("True bone age (months)", lo, max(hi, lo + 1), (lo, max(hi, lo + 1)), key="ds_age")
        top = max(1, int(df_all["abs_error"].max()) + 1)
        min_err = c3.slider("|error| at least (months)", 0, top, 0, key="ds_err")
    df = metrics.filter_predictions(df_all, sexes=sexes, age_range=age, min_abs_error=min_err)

    m = metrics.summarise(df) if len(df) else {"n": 0, "mae": None, "rmse": None, "bias": None}
    ba = metrics.bland_altman_stats(df)
    k = st.columns(5)
    k[0].metric(f"Images shown (of {len(df_all)})", f"{m['n']}")
    k[1].metric("MAE (months)", "—" if m["mae"] is None else f"{m['mae']:.1f}")
    k[2].metric("RMSE (months)", "—" if m["rmse"] is None else f"{m['rmse']:.1f}")
    k[3].metric("Bias (months)", "—" if m["bias"] is None else f"{m['bias']:+.1f}",
                help="Mean of predicted − true: positive means the model reads the skeleton as older.")
    k[4].metric("95% limits (months)", "—" if ba["lower"] is None else f"{ba['lower']:+.0f} / {ba['upper']:+.0f}",
                help="Bland–Altman limits of agreement: bias ± 1.96 SD of the error.")

    r1 = st.columns(2)
    r1[0].plotly_chart(dp.pred_vs_true_figure(df), width="stretch", key="ds_fig_scatter")
    r1[1].plotly_chart(dp.bland_altman_figure(df), width="stretch", key="ds_fig_ba")
    r2 = st.columns(2)
    r2[0].plotly_chart(dp.error_vs_age_figure(df), width="stretch", key="ds_fig_trend")
    r2[1].plotly_chart(dp.error_histogram_figure(df), width="stretch", key="ds_fig_hist")

    st.subheader("MAE and bias by age band and sex")
    if len(df):
        r3 = st.columns([2, 3])
        r3[0].dataframe(metrics.band_sex_table(df).rename(columns={"age_band": "age band", "mae": "MAE (months)",
                                                           "bias": "bias (months)"}), hide_index=True)
        r3[1].plotly_chart(dp.band_bias_figure(df), width="stretch", key="ds_fig_bands")
    else:
        st.caption("No images match the filters.")

    st.subheader("Worst cases")
    dirs = ui.default_image_dirs()
    c1, c2 = st.columns([3, 1])
    folder = c1.text_input("Image folder", value=str(dirs[0]) if dirs else "", key="ds_folder",
                           help="Where the CSV's images are (files named <id>.png etc.).")
    n = c2.number_input("How many", 1, 48, 8, key="ds_n")
    worst = metrics.worst_cases(df, int(n))
    inside = ui.confined_folder(folder) if folder else None
    found = {r.id: ui.find_case_image(folder, r.id) for r in worst.itertuples()} if inside else {}
    if folder and inside is None:
        st.warning(f"Images are read only from the configured data folders ({', '.join(str(p) for p in ui.data_roots())}); "
                   "add a folder to BONEAGE_DATA_ROOTS to use it.", icon=":material/folder_off:")
    elif not worst.empty and not any(found.values()):
        st.info(ui.WORST_CASES_NEED, icon=":material/image_not_supported:")
        if not ui.shared_data_present():
            ui.show_bundled_samples()
    thumbs = {i: ui.safe_thumbnail(p, 220) for i, p in found.items() if p is not None}
    cols = st.columns(4)
    for i, r in enumerate(worst.itertuples()):
        with cols[i % 4]:
            cap = (f"#{r.id} · {r.sex} · reader {r.boneage_months:.0f} months · model {r.predicted_months:.0f} months "
                   f"({r.error:+.0f})")
            if thumbs.get(r.id) is not None:
                st.image(thumbs[r.id], caption=cap, width="stretch")
            else:
                st.caption(cap + (" · image unreadable" if r.id in thumbs else ""))
    choices = [r.id for r in worst.itertuples() if thumbs.get(r.id) is not None]
    if choices:
        pick = st.selectbox("Inspect a case (pipeline stages and attention)", [None, *choices], key="ds_pick",
                            format_func=lambda i: "—" if i is None else f"#{i}")
        if pick is not None:
            row = worst[worst["id"] == pick].iloc[0]
            src = ui.Source(found[pick].read_bytes(), found[pick].name, ui.digest(found[pick].read_bytes()))
            # Inspecting the worst cases is research: show them even where the acceptance check would refuse
            # (the verdict is in the warnings below).
            pred = ui.predict(src, from_male(row["male"]), accept_unusual=True)
            st.markdown(f"**#{pick}**: true {row['boneage_months']:.0f} months, predicted now "
                        f"{pred.bone_age_months:.1f} months (CSV: {row['predicted_months']:.1f}).")
            a, b = st.columns([1, 2])
            a.image(ui.downscale(pred.overlay_rgb(), 500), caption="Attention and ROI boxes on the aligned image",
                    width="stretch")
            with b:
                ui.show_pipeline(pred.pipeline, columns=4)
