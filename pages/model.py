"""Model: the model card, training curves, architecture and measured benchmarks."""
import streamlit as st

from boneage import dataset_plots as dp
from boneage import ui

st.title("Model")
st.caption("What the model is, how it was trained and how it performs. " + ui.NOTICE)

with ui.guard("Model"):
    info = ui.model_files()
    meta = info["meta"]
    if not meta:
        st.warning(f"No model metadata (meta.json) in `{info['dir']}`: point BONEAGE_MODEL at a folder from "
                   "`boneage train`, or unset it to use the shipped model.", icon=":material/warning:")
    st.markdown(f"Version **`{meta.get('model_version', ui.model_version())}`** · backbone "
                f"**{meta.get('backbone', '—')}** · folder `{info['dir']}`")
    k = st.columns(4)
    card = info["card"] or {}
    epochs, how = ui.epochs_trained(card, info["history"])
    k[0].metric("Epochs trained", "—" if epochs is None else epochs, help=how)
    full = card.get("validation_thumbnails_full_path_tta") or {}
    copies = ui.tta_copies(meta)
    if full.get("mae") is not None:
        k[1].metric("Validation MAE", f"{full['mae']:.2f} months",
                    help=f"{full.get('n', '?')} validation radiographs through the full prediction path with {copies}× TTA"
                         + (f", {1 + len(card['ensemble'])} networks averaged" if card.get("ensemble") else "")
                         + f" (model.keras alone without TTA, on cached inputs: {meta.get('val_mae_months', float('nan')):.2f} months).")
    else:
        k[1].metric("Validation MAE", "—" if meta.get("val_mae_months") is None else f"{meta['val_mae_months']:.1f} months")
    k[2].metric("Residual SD", "—" if meta.get("val_residual_sd_months") is None
                else f"{meta['val_residual_sd_months']:.1f} months", help="Validation residual SD: the uncertainty floor.")
    k[3].metric("Input", f"{meta.get('image_height', '?')}×{meta.get('image_width', '?')} px")

    tab_card, tab_curves, tab_arch, tab_bench = st.tabs(["Model card", "Training curves", "Architecture", "Benchmarks"])
    with tab_card:
        if info["readme"]:
            st.markdown(info["readme"])
        if info["card"]:
            with st.expander("card.json", expanded=not info["readme"]):
                ui.render_mapping({k: v for k, v in info["card"].items() if k != "benchmarks"})  # own tab
        if not info["readme"] and not info["card"]:
            st.info(f"No model card (README.md or card.json) in `{info['dir']}` yet.", icon=":material/info:")
            st.json(meta, expanded=False)
    with tab_curves:
        if info["history"] is None:
            st.info(f"No training history (history.csv) in `{info['dir']}`.", icon=":material/info:")
        else:
            st.plotly_chart(dp.history_figure(info["history"]), width="stretch")
            st.caption(f"{len(info['history'])} epochs; loss is the training objective, MAE in months.")
    with tab_arch:
        arch = ui.architecture_summary()
        st.caption(f"{arch['name']}: {arch['params']:,} parameters ({arch['trainable']:,} trainable), "
                   f"{arch['layers']} layers; inputs {arch['inputs']}.")
        with st.expander("Layer-by-layer summary"):
            st.code(arch["text"], language=None)
    with tab_bench:
        if info["benchmarks"]:
            st.caption("Measured on the machine named in each table; rerun `bench/predict.py` and `bench/pipeline.py` "
                       "to measure yours.")
            ui.show_benchmarks(info["benchmarks"])
        else:
            st.info(f"No benchmarks (benchmarks.json) in `{info['dir']}` yet.", icon=":material/info:")
        if info["metrics"]:
            with st.expander("Validation metrics (metrics.json)", expanded=not info["benchmarks"]):
                ui.render_mapping(info["metrics"])
