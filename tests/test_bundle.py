"""The model bundle: one owner for its files, a typed meta.json, $BONEAGE_MODEL resolved once."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from boneage import bundle
from boneage.bundle import BundleError, BundleMeta
from boneage.paths import MODELS_DIR
from boneage.pipeline import PIPELINE_VERSION, PipelineParams


def test_shipped_meta_reads_typed_and_round_trips_unchanged():
    raw = json.loads((MODELS_DIR / bundle.META_FILE).read_text())
    meta = bundle.read_meta(MODELS_DIR)
    assert meta.model_version == raw["model_version"] and meta.provenance.backbone == raw["backbone"]
    assert meta.pipeline == PipelineParams.from_dict(raw["pipeline"]) and meta.pipeline_version == raw["pipeline_version"]
    assert (meta.inputs.image_height, meta.inputs.image_width) == (raw["image_height"], raw["image_width"])
    assert meta.labels.val_residual_sd_months == raw["val_residual_sd_months"]
    assert meta.provenance.trained_on == raw["trained_on"] and meta.provenance.keras_backend == raw["keras_backend"]
    out = meta.to_dict()
    assert out.pop("schema_version") == bundle.SCHEMA_VERSION
    # A bundle written by boneage train carries its schema version; one from before the schema does not.
    assert raw.pop("schema_version", bundle.SCHEMA_VERSION) == bundle.SCHEMA_VERSION
    assert out == raw and list(out) == list(raw)  # same keys, same order: the file reads as before


def test_resolution_env_folder_and_keras_file(monkeypatch, tmp_path):
    monkeypatch.delenv(bundle.ENV_VAR, raising=False)
    assert bundle.resolve().dir == MODELS_DIR
    monkeypatch.setenv(bundle.ENV_VAR, str(tmp_path / "run"))
    assert bundle.resolve().dir == tmp_path / "run"
    monkeypatch.setenv(bundle.ENV_VAR, str(tmp_path / "run" / "model.keras"))
    assert bundle.resolve().dir == tmp_path / "run"
    assert bundle.resolve(tmp_path / "other").model_file == tmp_path / "other" / bundle.MODEL_FILE


def test_sections_extra_files_and_unknown_keys_survive_a_round_trip(tmp_path):
    meta = BundleMeta(model_version="v1").with_section("conformal", {"alpha": 0.1, "q": 12.5})
    meta = bundle.write_extra_file(tmp_path, meta, "calibration.csv", "band,q\nall,12.5\n")
    bundle.write_meta(tmp_path, meta)
    raw = json.loads((tmp_path / bundle.META_FILE).read_text())
    raw["added_by_a_newer_step"] = {"x": 1}
    (tmp_path / bundle.META_FILE).write_text(json.dumps(raw))
    back = bundle.read_meta(tmp_path)
    assert back.section("conformal") == {"alpha": 0.1, "q": 12.5} and back.section("acceptance") is None
    assert back.files == ("calibration.csv",) and bundle.Bundle(tmp_path).file("calibration.csv").is_file()
    assert back.to_dict()["added_by_a_newer_step"] == {"x": 1}
    assert back.pipeline_version == PIPELINE_VERSION
    with pytest.raises(BundleError, match="plain extra file"):
        bundle.write_extra_file(tmp_path, meta, "../escape.txt", "x")


def test_missing_meta_gives_defaults(tmp_path):
    meta = bundle.read_meta(tmp_path)
    assert meta.model_version == "no model found" and meta.pipeline == PipelineParams()
    (tmp_path / bundle.MODEL_FILE).write_bytes(b"")
    assert bundle.read_meta(tmp_path).model_version == "unversioned"


@pytest.mark.parametrize("text, match", [
    ("{not json", "not readable JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"image_height": "tall"}', "image_height must be an integer"),
    ('{"pipeline": 3}', "pipeline must be an object"),
    ('{"val_residual_sd_months": "x"}', "must be a number"),
    ('{"sections": {"conformal": 1}}', "sections must be"),
    ('{"schema_version": 99}', "newer than this boneage reads"),
])
def test_malformed_meta_is_one_line_error(tmp_path, text, match):
    (tmp_path / bundle.META_FILE).write_text(text)
    with pytest.raises(BundleError, match=match) as e:
        bundle.read_meta(tmp_path)
    assert "\n" not in str(e.value)


def test_predictor_and_cli_report_a_malformed_meta_in_one_line(tmp_path, capsys):
    from boneage.cli import main
    from boneage.predict import PredictionError, Predictor

    (tmp_path / bundle.MODEL_FILE).write_bytes(b"")
    (tmp_path / bundle.META_FILE).write_text("{broken")
    with pytest.raises(PredictionError, match="not readable JSON"):
        Predictor.load(tmp_path)
    image = Path(__file__).parent / "fixtures" / "hires" / "1437.png"
    assert main(["predict", str(image), "--sex", "F", "--model", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("boneage: error:") and "not readable JSON" in err and "\n" not in err


def test_no_other_module_names_the_bundle_files():
    """One owner: model.keras / meta.json / $BONEAGE_MODEL are spelled only in bundle.py."""
    root = Path(bundle.__file__).parent
    offenders = []
    for f in [*root.rglob("*.py"), *(root.parent / "scripts").glob("*.py")]:
        if f.name == "bundle.py":
            continue
        text = f.read_text()
        for needle in ('"model.keras"', '"meta.json"', '"BONEAGE_MODEL"', "'meta.json'"):
            if needle in text:
                offenders.append(f"{f.name}: {needle}")
    assert not offenders, offenders


def test_int8_section_round_trips_replaces_and_is_checked(tmp_path):
    sha = "ab" * 32
    meta = bundle.add_int8(tmp_path, BundleMeta(model_version="v1"), "member-1.keras", b"graph-1", sha, "why")
    meta = bundle.add_int8(tmp_path, meta, "member-1.keras", b"graph-2", "cd" * 32)  # a new graph replaces the old
    bundle.write_meta(tmp_path, meta)
    back = bundle.read_meta(tmp_path)
    spec = bundle.Int8Spec.from_meta(back)
    assert spec.graphs == (("member-1.keras", "member-1.int8.tflite", "cd" * 32),) and spec.why == "why"
    assert back.files == ("member-1.int8.tflite",)
    assert bundle.load_int8(bundle.Bundle(tmp_path), back) == {"member-1.keras": (b"graph-2", "cd" * 32)}
    (tmp_path / "member-1.int8.tflite").unlink()
    with pytest.raises(BundleError, match="int8 graph member-1.int8.tflite of member-1.keras is missing"):
        bundle.load_int8(bundle.Bundle(tmp_path), back)
    assert bundle.load_int8(bundle.Bundle(tmp_path), BundleMeta(model_version="v1")) == {}


@pytest.mark.parametrize("section", [
    {}, {"graphs": []}, {"graphs": {"member-1.keras": {"file": "../x.tflite", "weights_sha256": "ab" * 32}}},
    {"graphs": {"member-1.keras": {"file": "m.tflite", "weights_sha256": "not-hex"}}},
    {"graphs": {"member.h5": {"file": "m.tflite", "weights_sha256": "ab" * 32}}},
])
def test_a_malformed_int8_section_is_a_one_line_error(section):
    with pytest.raises(BundleError, match="section 'int8' needs 'graphs'"):
        bundle.Int8Spec.from_meta(BundleMeta(model_version="v1").with_section(bundle.INT8_SECTION, section))
