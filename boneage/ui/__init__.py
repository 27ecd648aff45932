"""Streamlit helpers for the app (``streamlit_app.py`` and ``pages/``; ``app.py`` serves them): the pages are layout only.

The package is split along its seams; pages use ``from boneage import ui`` and ``ui.<name>``:

============== ==========================================================================
``state``      the model in use (folder, meta, version, cached :class:`Predictor`) and the
               per-image caches keyed by content hash (load, pipeline, predict)
``errors``     :func:`guard`, the single error boundary: one ``st.error`` line, never a traceback
``images``     display copies and thumbnails
``inputs``     the image picker (upload or sample) and the clinical input widgets
``results``    the prediction and pipeline panels
``downloads``  the pages' downloads, built at the click (our own route; ``app.py`` mounts it)
``home_page``, ``dataset_page``, ``model_page``, ``follow_up_page``: helpers only one page uses
============== ==========================================================================

All real work is done by the rest of ``boneage``.
"""
from __future__ import annotations

from .dataset_page import (WORST_CASES_NEED, confined_folder, data_roots, default_image_dirs, default_predictions_path,
                           find_case_image, shared_data_present, show_bundled_samples)
from .errors import friendly_message, guard
from .home_page import ATTRIBUTION, Accuracy, accuracy, page_link, sample_gallery
from .images import DISPLAY_MAX_SIDE, downscale, safe_thumbnail, thumbnail
from .inputs import (AGE_DATES, AGE_DIRECT, AGE_NONE, SAMPLE_MODE, UPLOAD_HELP, UPLOAD_MODE, ClinicalInputs, Sample,
                     clinical_inputs, image_source, sample_source, samples)
from .model_page import architecture_summary, epochs_trained, model_files, render_mapping, show_benchmarks, tta_copies
from .downloads import File, LiveDownloads, download_row, live_downloads, prediction_csv, prediction_record
from .results import (follow_up_pdf, plain_warning,
                      show_interpretation, show_pipeline, show_prediction, show_refusal, stage_caption)
from .state import (NOTICE, Source, digest, get_predictor, load, model_dir, model_identity, model_meta,
                    model_pipeline_params, model_version, predict, prepare_ahead, read_json, run_pipeline_cached, sidebar,
                    keep_keras_session, start_model_load)

__all__ = [
    "WORST_CASES_NEED", "shared_data_present", "show_bundled_samples", "Accuracy", "accuracy", "AGE_DATES", "AGE_DIRECT", "AGE_NONE", "File", "LiveDownloads", "download_row", "live_downloads", "ATTRIBUTION", "DISPLAY_MAX_SIDE", "NOTICE", "SAMPLE_MODE", "UPLOAD_HELP",
    "UPLOAD_MODE", "ClinicalInputs", "Sample", "Source", "architecture_summary", "clinical_inputs",
    "confined_folder", "data_roots", "default_image_dirs", "default_predictions_path", "digest", "downscale", "find_case_image", "friendly_message",
    "get_predictor", "guard", "image_source", "load", "model_dir", "model_files", "model_identity", "model_meta",
    "model_pipeline_params", "model_version", "page_link", "plain_warning", "predict", "prediction_csv",
    "prediction_record", "read_json", "render_mapping", "run_pipeline_cached", "safe_thumbnail", "sample_gallery",
    "follow_up_pdf", "sample_source", "samples", "show_interpretation", "show_benchmarks", "show_pipeline",
    "show_prediction", "show_refusal", "sidebar", "stage_caption", "start_model_load", "thumbnail",
    "keep_keras_session", "prepare_ahead", "epochs_trained", "tta_copies",
]
