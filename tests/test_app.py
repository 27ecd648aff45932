"""The Streamlit app through ``streamlit.testing.v1.AppTest``: every page, uploads, bad input.

The shipped model (``models/model.keras``) is used when present; otherwise ``$BONEAGE_MODEL``,
the stand-in at /tmp/smoke, or a tiny model trained here on the thumbnail fixtures (~1 min).
"""
from __future__ import annotations

import datetime as dt
import io
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from boneage import ui
from conftest import dicom_from as _dicom_from
from boneage.paths import FIXTURES_DIR, MODELS_DIR, SAMPLES_DIR
from boneage.pipeline import STAGES

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 240  # first runs load TensorFlow and the model
SAMPLE = FIXTURES_DIR / "hires" / "1437.png"  # girl, reader 136 months


def resolve_model(tmp_path_factory) -> Path | None:
    """The model folder the app should use in tests; None means the shipped default."""
    if (MODELS_DIR / "model.keras").is_file():
        return None
    env = os.environ.get("BONEAGE_MODEL")
    for cand in ([Path(env)] if env else []) + [Path("/tmp/smoke")]:
        if (cand / "model.keras").is_file() or (cand.suffix == ".keras" and cand.is_file()):
            return cand
    from boneage.train import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny_model")
    train(TrainConfig(data=str(REPO / "tests" / "fixtures" / "thumbs"), out=str(out), backbone="tiny",
                      pretrained=False, epochs=2, batch_size=16, val_fraction=0.25, workers=1,
                      cache_dir=str(tmp_path_factory.mktemp("tiny_cache"))), log=lambda *a, **k: None)
    return out


@pytest.fixture(scope="session")
def app_model(tmp_path_factory):
    """Points the app at a usable model for the whole session (env var only when needed)."""
    path = resolve_model(tmp_path_factory)
    old = os.environ.get("BONEAGE_MODEL")
    if path is not None:
        os.environ["BONEAGE_MODEL"] = str(path)
    yield path or MODELS_DIR
    if old is None:
        os.environ.pop("BONEAGE_MODEL", None)
    else:
        os.environ["BONEAGE_MODEL"] = old


def page(name: str) -> AppTest:
    return AppTest.from_file(str(REPO / name), default_timeout=TIMEOUT)


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def by_label(widgets, label: str):
    found = [w for w in widgets if w.label == label]
    assert found, f"no widget labelled {label!r}: {[w.label for w in widgets]}"
    return found[0]


def upload(at: AppTest, name: str, data: bytes, mime: str = "image/png", key: str = "predict_upload") -> AppTest:
    at.file_uploader(key=key).set_value((name, data, mime))
    return at.run()


def plotly_charts(at: AppTest) -> list:
    return at.get("plotly_chart")


def assert_bone_age(at: AppTest) -> float:
    m = metrics(at)
    assert "Bone age" in m, (m, errors(at))
    value = float(m["Bone age"].split()[0])
    assert 0 <= value <= 228
    years = next(x.delta for x in at.metric if x.label == "Bone age")  # "15 years 11 months" under the value
    assert years.endswith(("months", "month")) and "year" in years or float(value) < 12
    assert "90 % interval" in m or "Uncertainty (1 SD)" in m  # the interval when the bundle is calibrated
    return value


# ---------------------------------------------------------------------------- streamlit_app.py & Home


def test_app_entry_renders_home_with_sidebar(app_model):
    at = page("streamlit_app.py").run()
    no_exception(at)
    assert not errors(at)
    side = " ".join(x.value for x in at.sidebar.caption) + " ".join(x.value for x in at.sidebar.warning)
    assert ui.model_version() in side and "not for diagnosis" in side
    assert at.title[0].value == "boneage"
    gallery = [b for b in at.button if (b.key or "").startswith("gallery_")]
    assert len(gallery) == len(ui.samples()) == 6
    assert any("RSNA" in c.value for c in at.caption)  # attribution under the gallery


def test_app_start_loads_the_model_in_the_background(app_model, monkeypatch):
    """Opening the app starts loading (and warming) the model; the first click then finds it loaded."""
    import threading

    from boneage.predict import Predictor
    from boneage.ui import state

    at = page("streamlit_app.py").run()
    no_exception(at)
    t = state._background_load(*state._model_key())  # the thread app.py started (cached: the same one)
    assert isinstance(t, threading.Thread) and t.name == "boneage-model-warm-up"
    t.join(timeout=TIMEOUT * 4)
    assert not t.is_alive()

    def no_second_load(*a, **k):
        raise AssertionError("the model was loaded again on first use")

    monkeypatch.setattr(Predictor, "load", classmethod(no_second_load))
    assert state._load_predictor(*state._model_key()).model_version


def test_streamlit_internals_the_app_relies_on_still_exist():
    """app.py and ui.keep_keras_session set two private Streamlit names; an upgrade that drops them fails here
    (the app would still run, but slower: see their docstrings)."""
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner import script_runner

    assert hasattr(PagesManager, "uses_pages_directory")
    assert callable(getattr(script_runner, "_clean_problem_modules", None))


def test_the_app_keeps_the_keras_session_between_runs(app_model, monkeypatch):
    """Streamlit reset Keras after every run (0.4 s of garbage collection, and the next prediction 0.6 s slower)."""
    import keras

    calls = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *a, **k: calls.append(1))
    at = page("streamlit_app.py").run()
    no_exception(at)
    at.run()  # the second run's cleanup is surely the patched one
    assert calls == []
    plt_closed = []
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "close", lambda *a: plt_closed.append(a))
    from streamlit.runtime.scriptrunner import script_runner

    script_runner._clean_problem_modules()
    assert plt_closed == [("all",)] and calls == []  # what Streamlit's cleanup did besides is kept


def test_pages_navigate_by_st_navigation_from_the_first_request():
    """Serving app.py turns off Streamlit's old pages/ folder mode, so /predict opened first runs the entry script."""
    import subprocess
    import sys

    code = ("import runpy; runpy.run_path('app.py'); "
            "from streamlit.runtime.pages_manager import PagesManager; print(PagesManager.uses_pages_directory)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_home_sample_click_runs_full_prediction(app_model):
    at = page("streamlit_app.py").run()
    at.button(key="gallery_2110").click().run()
    no_exception(at)
    assert at.title[0].value == "Predict bone age"
    assert_bone_age(at)
    assert metrics(at)["Reader's bone age"] == "120 months"
    assert at.radio(key="predict_mode").value == ui.SAMPLE_MODE
    assert at.selectbox(key="predict_sample").value == "2110"


def test_home_page_alone_renders(app_model):
    at = page("pages/home.py").run()
    no_exception(at)
    assert not errors(at)
    text = " ".join(m.value for m in at.markdown)
    assert "What bone age is" in text and "Why it matters" in text
    acc = ui.accuracy()
    if acc is not None:  # the honest figure, read from the model card, and where the model fails
        assert metrics(at)["Average error, validation"] == f"{acc.validation_mae:.2f} months"
    assert any("not a medical device" in w.value for w in at.warning)
    assert len([b for b in at.button if (b.key or "").startswith("gallery_")]) == len(ui.samples())


# ------------------------------------------------------------------------------------ Predict


def test_predict_page_renders_and_waits_for_input(app_model):
    at = page("pages/predict.py").run()
    no_exception(at)
    assert not errors(at) and "Bone age" not in metrics(at)
    assert any("Upload a radiograph" in i.value for i in at.info)


def test_predict_upload_shows_bone_age_heatmap_warnings_downloads(app_model):
    at = page("pages/predict.py").run()
    upload(at, "hand.png", SAMPLE.read_bytes())
    no_exception(at)
    assert any("Choose the sex" in i.value for i in at.info)  # a PNG carries no sex
    assert "Bone age" not in metrics(at)
    by_label(at.radio, "Sex").set_value("F")
    at.run()
    no_exception(at)
    assert_bone_age(at)
    assert at.image, "no heatmap image"
    # every pipeline warning is shown (or the all-clear when there are none)
    assert at.warning or any("No warnings" in s.value for s in at.success)
    downloads = at.get("download_button")
    assert len(downloads) == 3
    assert len(plotly_charts(at)) == 1  # growth chart


def test_predict_refused_image_shows_reason_no_bone_age_no_downloads(app_model):
    from boneage.acceptance import AcceptanceCheck
    from boneage.negatives import make

    if AcceptanceCheck.load(app_model) is None:
        pytest.skip("the model in use has no acceptance calibration")
    at = page("pages/predict.py").run()
    upload(at, "noise.png", make("noise", 1).data)
    by_label(at.radio, "Sex").set_value("M")
    at.run()
    no_exception(at)
    errs = errors(at)
    assert any(e.startswith("This does not look like a child's hand radiograph: ") for e in errs), errs
    assert "Bone age" not in metrics(at) and not at.get("download_button")
    by_label(at.checkbox, "Predict anyway (research use: the result will say it was not accepted)").check()
    at.run()
    no_exception(at)
    assert_bone_age(at)
    assert any("not accepted" in w.value.lower() and "research" in w.value for w in at.warning)


def test_predict_app_and_api_give_the_same_interpretation(app_model):
    """The app calls Predictor.predict with the same clinical inputs as the CLI/API."""
    from boneage.predict import Predictor

    at = page("pages/predict.py").run()
    upload(at, "hand.png", SAMPLE.read_bytes())
    by_label(at.radio, "Sex").set_value("F")
    at.run()
    by_label(at.radio, "Chronological age").set_value(ui.AGE_DIRECT)
    at.run()
    by_label(at.number_input, "Years").set_value(10)
    by_label(at.number_input, "Months").set_value(6)
    by_label(at.number_input, "Height (cm, optional)").set_value(140.0)
    at.run()
    no_exception(at)
    assert not errors(at)
    summary = [i.value for i in at.info if i.value.startswith("Bone age")]
    assert summary, [i.value for i in at.info]
    direct = Predictor.load().predict(SAMPLE, sex="F", chronological_age_months=126.0, height_cm=140.0)
    assert summary[0] == direct.clinical.summary()
    assert metrics(at)["Status"] == (direct.clinical.status_range or direct.clinical.status)


def test_predict_bad_uploads_show_an_error_not_an_exception(app_model):
    at = page("pages/predict.py").run()
    png = SAMPLE.read_bytes()
    for name, data in (("notes.png", b"this is not a radiograph\n" * 10), ("cut.png", png[: len(png) // 3]),
                       ("empty.dcm", b""), ("tiny.png", _png(np.zeros((8, 8), np.uint8)))):
        upload(at, name, data)
        no_exception(at)
        errs = errors(at)
        assert len(errs) == 1 and name in errs[0], (name, errs)
        assert "Traceback" not in errs[0] and "\n" not in errs[0]
        assert "Bone age" not in metrics(at)


@pytest.mark.parametrize("fmt", ["png16", "tiff16", "jpeg"])
def test_predict_accepts_16_bit_and_other_formats(app_model, fmt):
    import cv2

    g = cv2.imread(str(SAMPLE), cv2.IMREAD_GRAYSCALE)
    img, ext = (g, ".jpg") if fmt == "jpeg" else (g.astype(np.uint16) * 257, ".png" if fmt == "png16" else ".tif")
    ok, buf = cv2.imencode(ext, img)
    assert ok
    at = page("pages/predict.py").run()
    upload(at, f"hand{ext}", buf.tobytes(), "application/octet-stream")
    by_label(at.radio, "Sex").set_value("F")
    at.run()
    no_exception(at)
    assert not errors(at)
    assert_bone_age(at)


def test_predict_inverted_right_hand_warnings_in_plain_words(app_model):
    import cv2

    g = cv2.imread(str(SAMPLE), cv2.IMREAD_GRAYSCALE)
    at = page("pages/predict.py").run()
    upload(at, "flipped.png", _png(np.ascontiguousarray(255 - g[:, ::-1])))
    by_label(at.radio, "Sex").set_value("F")
    at.run()
    no_exception(at)
    assert_bone_age(at)
    warnings = [w.value for w in at.warning]
    assert any("inverted" in w and "flipped" in w for w in warnings), warnings
    assert any("right hand" in w.lower() and "mirrored" in w for w in warnings), warnings
    assert all(w[0].isupper() and w.endswith(".") for w in warnings)


def test_predict_contradictory_dates_show_error_and_still_the_bone_age(app_model):
    at = page("pages/predict.py").run()
    upload(at, "hand.png", SAMPLE.read_bytes())
    by_label(at.radio, "Sex").set_value("M")
    by_label(at.radio, "Chronological age").set_value(ui.AGE_DATES)
    at.run()
    by_label(at.date_input, "Birth date").set_value(dt.date(2020, 5, 1))
    by_label(at.date_input, "Study date").set_value(dt.date(2018, 1, 1))
    at.run()
    no_exception(at)
    errs = errors(at)
    assert len(errs) == 1 and errs[0].startswith("Clinical inputs:"), errs
    assert_bone_age(at)
    assert "Status" not in metrics(at)


def test_predict_dicom_prefills_sex_and_dates(app_model):
    at = page("pages/predict.py").run()
    upload(at, "hand.dcm", _dicom_from(SAMPLE, PatientSex="M", PatientBirthDate="20140115", StudyDate="20250301"),
           mime="application/dicom")
    no_exception(at)
    assert by_label(at.radio, "Sex").value == "M"
    assert by_label(at.radio, "Chronological age").value == ui.AGE_DATES
    assert by_label(at.date_input, "Birth date").value == dt.date(2014, 1, 15)
    assert_bone_age(at)
    summary = [i.value for i in at.info if i.value.startswith("Bone age")]
    from boneage.clinical import chronological_age_months, format_age

    ca = chronological_age_months(dt.date(2014, 1, 15), dt.date(2025, 3, 1))
    assert summary and f"boy of chronological age {format_age(ca)}." in summary[0], summary


def _warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.warning]


def test_predict_dicom_not_given_means_not_given(app_model):
    """Dates in the tags, but the user chooses "Not given": the bone age without an interpretation."""
    at = page("pages/predict.py").run()
    upload(at, "hand.dcm", _dicom_from(SAMPLE, PatientSex="M", PatientBirthDate="20140115", StudyDate="20250301"),
           mime="application/dicom")
    by_label(at.radio, "Chronological age").set_value(ui.AGE_NONE)
    at.run()
    no_exception(at)
    assert_bone_age(at)
    assert "Status" not in metrics(at) and not errors(at)
    assert not [i.value for i in at.info if i.value.startswith("Bone age")]


def test_predict_typed_age_wins_over_dicom_dates_with_a_warning(app_model):
    at = page("pages/predict.py").run()
    upload(at, "hand.dcm", _dicom_from(SAMPLE, PatientSex="M", PatientBirthDate="20140115", StudyDate="20250301"),
           mime="application/dicom")
    by_label(at.radio, "Chronological age").set_value(ui.AGE_DIRECT)
    at.run()
    by_label(at.number_input, "Years").set_value(8)
    by_label(at.number_input, "Months").set_value(0)
    at.run()
    no_exception(at)
    assert_bone_age(at) and not errors(at)
    summary = [i.value for i in at.info if i.value.startswith("Bone age")]
    from boneage.vocab import format_age

    assert summary and f"boy of chronological age {format_age(96)}." in summary[0], summary
    assert any(f"Chronological age given as {format_age(96)}" in w and "given age used" in w for w in _warnings(at)), \
        _warnings(at)


@pytest.mark.parametrize("tags, warning", [
    (dict(PatientBirthDate="20141345", StudyDate="20250301"), "is not a valid date"),
    (dict(PatientBirthDate="20200101", StudyDate="20150301"), "before the birth date"),
    (dict(PatientBirthDate="20990101", StudyDate="20250301"), "in the future"),
    (dict(PatientAge="999Y"), "is not a child's age"),
])
def test_predict_implausible_dicom_tags_still_give_the_bone_age(app_model, tags, warning):
    at = page("pages/predict.py").run()
    upload(at, "hand.dcm", _dicom_from(SAMPLE, PatientSex="F", **tags), mime="application/dicom")
    no_exception(at)
    assert not errors(at), errors(at)
    assert by_label(at.radio, "Chronological age").value == ui.AGE_NONE  # the bad tag fills nothing
    assert_bone_age(at)
    assert any(warning in w for w in _warnings(at)), _warnings(at)


def test_predict_date_widgets_take_old_and_future_dates(app_model):
    at = page("pages/predict.py").run()
    upload(at, "hand.dcm", _dicom_from(SAMPLE, PatientSex="F", PatientBirthDate="19800301", StudyDate="19900301"),
           mime="application/dicom")
    no_exception(at)
    assert by_label(at.date_input, "Birth date").value == dt.date(1980, 3, 1)  # before 1990: no exception
    assert_bone_age(at)
    summary = [i.value for i in at.info if i.value.startswith("Bone age")]
    from boneage.vocab import format_age

    assert summary and f"girl of chronological age {format_age(120)}." in summary[0], summary
    by_label(at.date_input, "Birth date").set_value(dt.date(1950, 1, 1))
    at.run()
    no_exception(at)
    errs = errors(at)
    assert len(errs) == 1 and errs[0].startswith("Clinical inputs:") and "beyond 20 years" in errs[0], errs
    assert_bone_age(at)


# ------------------------------------------------------------------------------------ Pipeline


def test_pipeline_page_shows_every_stage_and_reacts_to_parameters(app_model):
    at = page("pages/pipeline.py").run()
    no_exception(at)
    at.radio(key="pipeline_mode").set_value(ui.SAMPLE_MODE).run()
    no_exception(at)
    captions = [c for img in at.image for c in img.captions if c]
    assert len(captions) == len(STAGES)
    assert [c.split(". ", 1)[1].split(" — ")[0] for c in captions] == list(STAGES)  # in order, named
    assert "Rotation" in metrics(at) and "ROI boxes" in metrics(at)
    before = next(c for c in captions if " clahe — " in c)
    at.slider(key="pl_clip").set_value(4.0)
    at.slider(key="pl_tiles").set_value(8)
    at.radio(key="pl_threshold").set_value("otsu")
    at.run()
    no_exception(at)
    after = [c for img in at.image for c in img.captions if c]
    clahe = next(c for c in after if " clahe — " in c)
    assert clahe != before and "Clip 4, 8×8 tiles" in clahe
    assert any("Method: otsu" in c for c in after)
    assert any("differ from the model's trained settings" in c.value for c in at.caption)


def test_pipeline_page_bad_upload(app_model):
    at = page("pages/pipeline.py").run()
    upload(at, "x.jpg", b"\xff\xd8\xff\xe0 truncated jpeg", "image/jpeg", key="pipeline_upload")
    no_exception(at)
    assert len(errors(at)) == 1 and "x.jpg" in errors(at)[0]


# ------------------------------------------------------------------------------------ Dataset errors


def test_dataset_page_default_predictions_populate_every_plot(app_model):
    at = page("pages/dataset.py").run()
    no_exception(at)
    assert not errors(at)
    m = metrics(at)
    df = pd.read_csv(ui.default_predictions_path()).dropna(subset=["predicted_months"])
    n_total = len(df)
    assert m[f"Images shown (of {n_total})"] == str(n_total)
    figs = plotly_charts(at)
    assert len(figs) == 5  # scatter, Bland-Altman, trend, histogram, bias by band (true and predicted age)
    assert all(len(_traces(f)) >= 2 for f in figs)  # data drawn, not an empty placeholder
    assert at.dataframe, "no MAE/bias table"
    at.slider(key="ds_err").set_value(10).run()
    shown = metrics(at)[f"Images shown (of {n_total})"]
    assert int(shown) == int(((df.predicted_months - df.boneage_months).abs() >= 10).sum())


def test_dataset_page_uploaded_csv_and_worst_case_inspection(app_model, tmp_path):
    labels = pd.read_csv(SAMPLES_DIR / "labels.csv")
    labels["predicted_months"] = labels["boneage_months"] + np.arange(len(labels)) * 5.0 - 10
    at = page("pages/dataset.py").run()
    at.file_uploader(key="ds_upload").set_value(("mine.csv", labels.to_csv(index=False).encode(), "text/csv"))
    at.run()
    no_exception(at)
    assert metrics(at)[f"Images shown (of {len(labels)})"] == str(len(labels))
    at.text_input(key="ds_folder").set_value(str(SAMPLES_DIR)).run()
    worst_id = str(labels.loc[(labels.predicted_months - labels.boneage_months).abs().idxmax(), "id"])
    pick = at.selectbox(key="ds_pick")
    assert pick.options[1] == f"#{worst_id}"
    pick.set_value(worst_id).run()
    no_exception(at)
    assert not errors(at)
    caps = [c for img in at.image for c in img.captions if c]
    assert any(c.startswith("Attention") for c in caps)
    assert sum(" — " in c for c in caps) == len(STAGES)


def test_dataset_page_unreadable_case_image_is_skipped(app_model, tmp_path, monkeypatch):
    (tmp_path / "7.png").write_bytes(b"not a png")
    (tmp_path / "8.png").write_bytes(SAMPLE.read_bytes())
    csv = b"id,boneage_months,male,predicted_months\n7,100,True,160\n8,120,False,130\n"
    at = page("pages/dataset.py").run()
    at.file_uploader(key="ds_upload").set_value(("two.csv", csv, "text/csv"))
    at.run()
    at.text_input(key="ds_folder").set_value(str(tmp_path)).run()  # not a configured data folder
    no_exception(at)
    assert any("configured data folders" in w.value for w in at.warning) and len(at.image) == 0
    monkeypatch.setenv("BONEAGE_DATA_ROOTS", str(tmp_path))
    at.run()
    no_exception(at)
    assert not errors(at)
    assert any("#7" in c.value and "image unreadable" in c.value for c in at.caption)
    assert at.selectbox(key="ds_pick").options == ["—", "#8"]
    assert len(at.image) == 1


def test_dataset_page_bad_csv_shows_error(app_model):
    at = page("pages/dataset.py").run()
    at.file_uploader(key="ds_upload").set_value(("bad.csv", b"a,b\n1,2\n", "text/csv"))
    at.run()
    no_exception(at)
    assert len(errors(at)) == 1 and "missing column" in errors(at)[0]


# ------------------------------------------------------------------------------------ Model


def test_model_page_renders_card_curves_architecture(app_model):
    at = page("pages/model.py").run()
    no_exception(at)
    assert not errors(at)
    assert any(f"`{ui.model_version()}`" in md.value for md in at.markdown)
    assert any(f"backbone **{ui.model_meta()['backbone']}**" in md.value for md in at.markdown)
    card = ui.read_json(ui.model_dir() / "card.json") or {}
    phases = (card.get("training") or {}).get("phases") or []
    members = sum(m.get("epochs_run") or 0 for m in card.get("ensemble") or [])  # every network's epochs
    assert metrics(at)["Epochs trained"] == str((sum(p["epochs_run"] for p in phases) if phases
                                                 else len(pd.read_csv(ui.model_dir() / "history.csv"))) + members)
    assert len(plotly_charts(at)) == 1  # training curves
    assert any("parameters" in c.value for c in at.caption)
    assert at.code and "Total params" in at.code[0].value
    if (ui.model_dir() / "benchmarks.json").is_file():  # readable tables: words and units, no raw floats
        tables = [d.value for d in at.dataframe if list(d.value.columns)[:1] in (["figure"], ["case"])]
        figures = pd.concat([t for t in tables if list(t.columns) == ["figure", "value"]])
        assert figures["value"].str.contains(r" ms$").any() and not figures["figure"].str.contains("_").any()
        cells = " ".join(" ".join(map(str, t.to_numpy().ravel())) for t in tables)
        assert "load_ms_median" not in cells and not re.search(r"\d\.\d{4,}", cells)


def test_pages_degrade_gracefully_without_a_model(app_model, tmp_path, monkeypatch):
    monkeypatch.setenv("BONEAGE_MODEL", str(tmp_path))
    at = page("pages/model.py").run()
    no_exception(at)
    assert any("No model card" in i.value for i in at.info)
    assert any("No training history" in i.value for i in at.info)
    errs = errors(at)
    assert len(errs) == 1 and "no model at" in errs[0]  # architecture needs the model
    at = page("pages/dataset.py").run()
    no_exception(at)
    assert any("No validation predictions" in i.value for i in at.info)
    at = page("streamlit_app.py").run()
    no_exception(at)
    assert any("no model found" in c.value for c in at.sidebar.caption)


# ------------------------------------------------------------------------------------ helpers


def _png(a: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _traces(chart) -> list:
    import json

    return json.loads(chart.proto.spec)["data"]


def test_choosing_dates_shows_a_prompt_not_an_error(app_model):
    """Inputs never show an error before the user acted: "Birth and study dates" asks for the birth date."""
    at = page("pages/predict.py").run()
    at.radio(key="predict_mode").set_value(ui.SAMPLE_MODE).run()
    mode = next(r for r in at.radio if (r.key or "").startswith("agemode_"))
    mode.set_value(ui.AGE_DATES).run()
    no_exception(at)
    assert not errors(at), errors(at)
    assert any("Enter the birth date" in c.value for c in at.caption)
    assert_bone_age(at)  # the reading is there meanwhile


def test_dataset_page_without_the_data_says_what_worst_cases_need(app_model, tmp_path, monkeypatch):
    """A fresh clone (no RSNA data): the worst-case gallery says what it needs and shows the bundled samples."""
    monkeypatch.setenv("BONEAGE_DATA", str(tmp_path / "absent"))
    at = page("pages/dataset.py").run()
    no_exception(at)
    assert not errors(at)
    assert any(i.value == ui.WORST_CASES_NEED for i in at.info)
    caps = [c for img in at.image for c in img.captions if c]
    assert sum("reader" in c for c in caps) == len(ui.samples()) > 0


def test_an_upload_is_prepared_while_the_sex_is_chosen_and_read_from_the_cache(app_model, monkeypatch):
    """prepare_ahead (the Predict page calls it at the sex prompt) runs the pipeline once; the reading after
    the click reuses it, and the cached objects are shared, not unpickled copies (0.2 s per 2000×2500 upload)."""
    from boneage import predict as predict_mod
    from boneage.ui import state

    state._background_load(*state._model_key()).join(timeout=TIMEOUT * 4)
    data = SAMPLE.read_bytes() + b"\0" * 7  # trailing bytes: a new digest, so nothing is cached from other tests
    src = state.Source(data, "prep.png", state.digest(data))
    runs = []
    real = predict_mod._prepare_pixels
    monkeypatch.setattr(predict_mod, "_prepare_pixels", lambda *a, **k: runs.append(1) or real(*a, **k))
    state.prepare_ahead(src)
    assert runs == [1]
    p1 = state._predict(src.digest, src.data, src.name, "F", None, None, None, None, state.model_identity())
    assert runs == [1] and 0 <= p1.bone_age_months <= 228
    p2 = state._predict(src.digest, src.data, src.name, "F", None, None, None, None, state.model_identity())
    assert p2 is p1 and state.load(src) is state.load(src)


def test_the_server_loads_the_model_at_start_before_any_browser_connects(app_model):
    """`streamlit run app.py` with nobody connected: the server log says the model is loaded and warm."""
    import subprocess
    import threading

    from conftest import free_port, streamlit_command

    proc = subprocess.Popen(streamlit_command(free_port()), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    lines = []
    guard = threading.Timer(TIMEOUT * 2, proc.kill)  # a silent hang ends the read loop too
    guard.start()
    try:
        for line in proc.stdout:  # ends when the process does
            lines.append(line)
            if "loaded and warmed up" in line or "not loaded at start" in line:
                break
    finally:
        guard.cancel()
        proc.terminate()
        proc.wait(timeout=30)
    text = "".join(lines)
    assert re.search(r"model \S+ loaded and warmed up in [\d.]+ s", text), text[-2000:]
    assert "Traceback" not in text and "No runtime found" not in text, text[-2000:]
