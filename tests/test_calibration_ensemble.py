"""Output calibration (boneage.calibration) and ensemble bundles (boneage.bundle.EnsembleSpec), both
as read by Predictor from a bundle: fitted honestly, applied from the metadata, refused in one line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from boneage import bundle, calibration
from boneage.calibration import CalibrationError, OutputCalibration

REPO = Path(__file__).resolve().parent.parent
THUMB = REPO / "tests" / "fixtures" / "thumbs" / "1585.png"


# ------------------------------------------------------------------------------------ calibration


def _shrunk(n=1200, seed=0):
    """Predictions that regress to the mean, as the network's do: p = mean + 0.8 (y − mean) + noise."""
    rng = np.random.default_rng(seed)
    y = rng.uniform(10, 220, n)
    p = 127 + 0.8 * (y - 127) + rng.normal(0, 6, n)
    sex = np.where(rng.random(n) < 0.5, "M", "F")
    return p, y, sex, [str(i) for i in range(n)]


def test_isotonic_fit_is_monotone_and_undoes_a_shrinkage():
    p, y, sex, ids = _shrunk()
    cal = calibration.fit(p, y, sex, "isotonic")
    grid = np.linspace(-20, 260, 300)
    for s in ("M", "F"):
        assert np.all(np.diff(cal.apply(grid, s)) >= 0)
    cf = calibration.cross_fit(p, y, sex, ids, "isotonic")
    assert np.abs(cf - y).mean() < np.abs(p - y).mean() - 1.0  # the shrinkage costs > 1 month here; undone


def test_linear_fit_recovers_the_line_per_sex():
    rng = np.random.default_rng(1)
    p = rng.uniform(20, 200, 400)
    sex = np.array(["M", "F"] * 200)
    y = np.where(sex == "M", 1.25 * p - 10, 0.9 * p + 5)
    cal = calibration.fit(p, y, sex, "linear")
    assert cal.apply(100.0, "M") == pytest.approx(115.0) and cal.apply(100.0, "F") == pytest.approx(95.0)
    assert cal.apply([100.0, 100.0], np.array(["M", "F"])).tolist() == pytest.approx([115.0, 95.0])


def test_debias_removes_the_bias_per_true_age_band_as_far_as_it_pays():
    """``debias`` moves the prediction towards the inverse of E[predicted | true]: with a pure
    shrinkage and little noise it goes (nearly) all the way and the end bands lose their bias;
    with noise that dwarfs the shrinkage it stays put (λ = 0: the inverse would only add noise)."""
    def band_bias(q, y):
        e, b = q - y, np.digitize(y, [60, 120, 180])
        return np.array([e[b == k].mean() for k in range(4)])

    p, y, sex, ids = _shrunk()
    assert np.abs(band_bias(p, y)).max() > 15  # the shrinkage shows at the ends
    cal = calibration.fit(p, y, sex, "debias")
    for s in ("M", "F"):
        assert np.all(np.diff(cal.apply(np.linspace(-20, 260, 300), s)) > 0)  # monotone
    cf = calibration.cross_fit(p, y, sex, ids, "debias")
    assert np.abs(band_bias(cf, y)).max() < 3 and np.abs(cf - y).mean() < np.abs(p - y).mean()
    rng = np.random.default_rng(5)
    y = rng.uniform(10, 220, 1000)
    noisy = y + rng.normal(0, 40, len(y))  # no shrinkage of the mean line, only noise
    s = np.array(["M", "F"] * 500)
    m = calibration.fit_map(noisy[s == "M"], y[s == "M"], "debias")
    assert m(np.array([50.0, 150.0])) == pytest.approx([50.0, 150.0], abs=3.0)


def test_cross_fit_never_fits_a_half_on_itself():
    p, y, sex, ids = _shrunk(600)
    half = calibration.halves(ids)
    assert 0.4 < half.mean() < 0.6
    cf = calibration.cross_fit(p, y, sex, ids, "linear")
    other = calibration.fit(p[~half], y[~half], sex[~half], "linear")
    assert cf[half] == pytest.approx(other.apply(p[half], sex[half]))
    y2 = y.copy()
    y2[half] += 50  # changing one half's truth cannot move that half's calibrated values
    assert calibration.cross_fit(p, y2, sex, ids, "linear")[half] == pytest.approx(cf[half])


def test_section_round_trip_and_malformed_sections_are_one_line_errors():
    p, y, sex, _ = _shrunk(400)
    cal = calibration.fit(p, y, sex, "isotonic", fit_on="test")
    back = OutputCalibration.from_section(json.loads(json.dumps(cal.to_section())))
    assert back.method == "isotonic" and back.info["fit_on"] == "test" and back.info["n"] == 400
    assert back.apply(np.array([30.0, 120.0, 200.0]), "F") == pytest.approx(cal.apply([30.0, 120.0, 200.0], "F"), abs=0.01)
    assert OutputCalibration.from_section(None) is None
    good = {"method": "linear", "maps": {"M": {"x": [0, 228], "y": [5, 230]}, "F": {"x": [0, 228], "y": [0, 228]}}}
    assert OutputCalibration.from_section(good).apply(0.0, "M") == 5.0
    bad = [
        {**good, "method": "spline"},
        {"method": "linear", "maps": {"M": good["maps"]["M"]}},  # no F
        {**good, "maps": {**good["maps"], "F": {"x": [0, 228], "y": [200, 100]}}},  # falling
        {**good, "maps": {**good["maps"], "F": {"x": [0, float("nan")], "y": [0, 1]}}},
        {**good, "maps": {**good["maps"], "F": {"x": [0], "y": [0]}}},
        {**good, "maps": {**good["maps"], "F": "identity"}},
    ]
    for d in bad:
        with pytest.raises(CalibrationError) as e:
            OutputCalibration.from_section(d)
        assert "\n" not in str(e.value) and str(e.value).startswith("output calibration: malformed")


def test_fits_refuse_too_little_or_meaningless_data():
    with pytest.raises(CalibrationError, match="too few"):
        calibration.fit(np.arange(20.0), np.arange(20.0), np.array(["M", "F"] * 10))
    with pytest.raises(CalibrationError, match="falls"):
        calibration.fit_map(np.arange(100.0), -np.arange(100.0), "linear")
    with pytest.raises(CalibrationError, match="method"):
        calibration.fit_map(np.arange(100.0), np.arange(100.0), "cubic")
    with pytest.raises(CalibrationError, match="0 images are too few"):
        calibration.fit(np.arange(100.0), np.arange(100.0), np.array(["M"] * 100))  # no girls


# ------------------------------------------------------------------------------------ bundles


def _tiny_bundle(folder: Path, seed: int, size=(160, 128)):
    import keras

    from boneage.model import build_model
    from boneage.pipeline import PipelineParams

    keras.utils.set_random_seed(seed)
    net = build_model("tiny", size, weights=None)
    meta = bundle.new_meta(model_version=f"tiny-{seed}", backbone="tiny", image_height=size[0], image_width=size[1],
                           pipeline=PipelineParams(model_height=size[0], model_width=size[1]),
                           label_mean_months=120.0, label_sd_months=40.0, val_residual_sd_months=10.0,
                           val_mae_months=None, trained_on="nothing (random weights, a test)")
    bundle.save(folder, net, meta)
    return folder


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles")
    return _tiny_bundle(root / "a", 1), _tiny_bundle(root / "b", 2), _tiny_bundle(root / "small", 3, (96, 80))


def _copy_bundle(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_predictor_applies_the_bundles_calibration(bundles, tmp_path):
    from boneage.predict import Predictor

    plain = Predictor.load(bundles[0])
    assert plain.calibration is None
    r0 = plain.predict(THUMB, sex="M", tta=2, accept_unusual=True)
    b = _copy_bundle(bundles[0], tmp_path / "cal")
    meta = bundle.read_meta(b)
    shift = {"x": [-1000.0, 1000.0], "y": [-988.0, 1012.0]}  # +12 months for boys, −6 for girls
    meta = meta.with_section(calibration.SECTION, {"method": "linear", "maps": {
        "M": shift, "F": {"x": [-1000.0, 1000.0], "y": [-1006.0, 994.0]}}})
    bundle.write_meta(b, meta)
    cal = Predictor.load(b)
    assert cal.calibration is not None and cal.calibration.method == "linear"
    r1 = cal.predict(THUMB, sex="M", tta=2, accept_unusual=True)
    assert r1.tta_predictions == pytest.approx(r0.tta_predictions, abs=1e-3)  # the copies stay raw
    assert r1.tta_sd_months == pytest.approx(r0.tta_sd_months, abs=1e-3)
    assert r1.bone_age_months == pytest.approx(np.clip(r0.bone_age_months + 12, 0, 228), abs=1e-2)
    rf0 = plain.predict(THUMB, sex="F", tta=2, accept_unusual=True)
    rf1 = cal.predict(THUMB, sex="F", tta=2, accept_unusual=True)
    assert rf1.bone_age_months == pytest.approx(np.clip(rf0.bone_age_months - 6, 0, 228), abs=1e-2)


def test_a_malformed_calibration_refuses_to_load_in_one_line(bundles, tmp_path):
    from boneage.predict import PredictionError, Predictor

    b = _copy_bundle(bundles[0], tmp_path / "bad")
    bundle.write_meta(b, bundle.read_meta(b).with_section(calibration.SECTION, {"method": "linear", "maps": {}}))
    with pytest.raises(PredictionError) as e:
        Predictor.load(b)
    assert "\n" not in str(e.value) and "output calibration" in str(e.value)


def test_ensemble_members_share_the_tta_copies(bundles, tmp_path):
    from boneage.io import load_image
    from boneage.model import load_model
    from boneage.predict import Predictor, prepare
    from boneage.train import predict_arrays

    b = _copy_bundle(bundles[0], tmp_path / "ens")
    meta = bundle.add_member(b, bundle.read_meta(b), bundles[1])
    bundle.write_meta(b, meta)
    assert meta.files == ("member-1.keras",) and bundle.read_meta(b).section("ensemble")["members"] == ["member-1.keras"]
    p = Predictor.load(b)
    assert p.networks == 2
    r = p.predict(THUMB, sex="F", tta=4, accept_unusual=True)
    # by hand: copy i read by network i mod 2
    prep = prepare(load_image(THUMB), p.params, tta=4)
    x = (prep.batch[..., 0] * 255.0).astype(np.float32)
    male = np.zeros(4)
    a = predict_arrays(load_model(bundles[0] / "model.keras"), x, male)
    m = predict_arrays(load_model(bundles[1] / "model.keras"), x, male)
    want = [a[0], m[1], a[2], m[3]]
    assert r.tta_predictions == pytest.approx(want, abs=1e-2)
    assert r.bone_age_months == pytest.approx(float(np.clip(np.mean(want), 0, 228)), abs=1e-2)
    assert not np.allclose(a, m)  # two different networks really were read
    # the batch path (many images per model call) agrees with the one-image path
    (months, att, pooled), = p.predict_prepared([prep], ["F"])
    assert months == pytest.approx(want, abs=1e-2) and att.shape[0] == 4 and pooled.shape[0] == 4
    two = p.predict_prepared([prep, prep], ["F", "F"])
    assert two[1][0] == pytest.approx(want, abs=1e-2)


def test_a_member_trained_at_another_size_reads_the_bundles_input_resized(bundles, tmp_path):
    """add_member wraps a 96×80 network so it reads the 160×128 pipeline output (bilinear resize
    first, boneage.model.resized_input): same weights, the same answer as the bare network on
    the resized copies, and the attention of every copy on network 0's grid."""
    import keras

    from boneage.io import load_image
    from boneage.model import load_model
    from boneage.predict import Predictor, prepare
    from boneage.train import predict_arrays

    b = _copy_bundle(bundles[0], tmp_path / "sizes")
    bundle.write_meta(b, bundle.add_member(b, bundle.read_meta(b), bundles[2]))
    member = load_model(b / "member-1.keras")
    assert tuple(member.inputs[0].shape[1:3]) == (160, 128) and member.get_layer("input_resize") is not None
    p = Predictor.load(b)
    r = p.predict(THUMB, sex="M", tta=4, accept_unusual=True)
    prep = prepare(load_image(THUMB), p.params, tta=4)
    small = keras.ops.convert_to_numpy(keras.layers.Resizing(96, 80)(prep.batch))
    bare = predict_arrays(load_model(bundles[2] / "model.keras"), small[..., 0] * 255.0, np.ones(4))
    first = predict_arrays(load_model(bundles[0] / "model.keras"), prep.batch[..., 0] * 255.0, np.ones(4))
    assert r.tta_predictions == pytest.approx([first[0], bare[1], first[2], bare[3]], abs=1e-2)
    (months, att, pooled), = p.predict_prepared([prep], ["M"])
    grid = Predictor.load(bundles[0]).predict(THUMB, sex="M", tta=1, accept_unusual=True).attention_map.shape
    assert att.shape == (4, *grid) and r.attention_map.shape == grid


def test_ensemble_bundles_that_cannot_work_fail_at_load_in_one_line(bundles, tmp_path):
    from boneage.predict import PredictionError, Predictor

    cases = {}
    b = _copy_bundle(bundles[0], tmp_path / "missing")
    bundle.write_meta(b, bundle.read_meta(b).with_section("ensemble", {"members": ["member-1.keras"]}))
    cases["missing"] = b
    b = _copy_bundle(bundles[0], tmp_path / "size")  # a 96×80 network copied by hand into a 160×128 bundle
    (b / "member-1.keras").write_bytes((bundles[2] / "model.keras").read_bytes())
    bundle.write_meta(b, bundle.read_meta(b).with_section("ensemble", {"members": ["member-1.keras"]}))
    cases["does not match"] = b
    b = _copy_bundle(bundles[0], tmp_path / "garbled")
    (b / "member-1.keras").write_bytes(b"not a model")
    bundle.write_meta(b, bundle.read_meta(b).with_section("ensemble", {"members": ["member-1.keras"]}))
    cases["cannot load"] = b
    for bad in ({"members": []}, {"members": ["../x.keras"]}, {"members": ["model.keras"]}, {"members": ["a.keras", "a.keras"]}):
        b = _copy_bundle(bundles[0], tmp_path / f"spec{len(cases)}")
        bundle.write_meta(b, bundle.read_meta(b).with_section("ensemble", bad))
        cases[f"section 'ensemble'|names a member twice#{len(cases)}"] = b
    for want, b in cases.items():
        with pytest.raises(PredictionError) as e:
            Predictor.load(b)
        msg = str(e.value)
        assert "\n" not in msg and any(w in msg for w in want.split("#")[0].split("|")), (want, msg)
    with pytest.raises(bundle.BundleError, match="not a new member"):
        bundle.add_member(cases["missing"], bundle.read_meta(cases["missing"]), bundles[1], name="member-1.keras")


def test_the_script_ships_a_calibration_only_when_it_helps_cross_fitted(tmp_path):
    import subprocess
    import sys

    def run(p, y, sex, ids, folder):
        folder.mkdir()
        bundle.write_meta(folder, bundle.BundleMeta(model_version="t"))
        csv = folder / "val.csv"
        csv.write_text("id,boneage_months,male,predicted_months\n" + "".join(
            f"{i},{a:.2f},{s == 'M'},{b:.3f}\n" for i, a, s, b in zip(ids, y, sex, p)) + "99999,100,True,\n")
        out = subprocess.run([sys.executable, str(REPO / "scripts" / "calibrate_output.py"), str(csv),
                              "--bundle", str(folder), "--write"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout, bundle.read_meta(folder), json.loads((folder / "output_calibration.json").read_text())

    p, y, sex, ids = _shrunk(800)
    text, meta, report = run(p, y, sex, ids, tmp_path / "shrunk")
    assert "wrote the" in text and meta.section(calibration.SECTION)["method"] in calibration.METHODS
    assert report["shipped"] and report["cross_fitted_gain_months"] > 1 and report["rows"]["uncalibrated"]["mae"] > 4
    assert report["measured_on"].startswith("800 validation images")  # the refused row (no prediction) is left out
    rng = np.random.default_rng(5)
    p = rng.uniform(10, 220, 800)
    text, meta, report = run(p, p + rng.normal(0, 8, 800), sex, ids, tmp_path / "calibrated")  # E[true | p] = p
    assert "not shipped" in text and meta.section(calibration.SECTION) is None and not report["shipped"]


def test_add_member_refuses_what_is_not_a_model_in_one_line(bundles, tmp_path):
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"PK not really")
    with pytest.raises(bundle.BundleError) as e:
        bundle.add_member(bundles[0], bundle.read_meta(bundles[0]), junk)
    assert "\n" not in str(e.value) and "cannot load the model to add" in str(e.value)
    with pytest.raises(bundle.BundleError, match="no model at"):
        bundle.add_member(bundles[0], bundle.read_meta(bundles[0]), tmp_path / "nothing")


def test_the_shipped_bundle_keeps_within_issue_9s_size_budget():
    from boneage.paths import MODELS_DIR

    total = sum(f.stat().st_size for f in MODELS_DIR.rglob("*") if f.is_file())
    assert total <= 60 * 2**20, f"models/ holds {total / 2**20:.1f} MiB (budget 60)"


def test_beyond_the_fitted_range_a_value_keeps_the_ends_offset():
    from boneage.calibration import SexMap

    f = SexMap((20.0, 100.0, 200.0), (30.0, 100.0, 190.0))
    assert f(np.array([10.0, 20.0, 60.0, 200.0, 220.0])).tolist() == pytest.approx([20.0, 30.0, 65.0, 190.0, 210.0])
    assert np.all(np.diff(f(np.linspace(-50, 300, 200))) > 0)  # still increasing through both ends


# ------------------------------------------------------------------------------------ TTA count


def test_the_bundle_sets_how_many_tta_copies_a_prediction_reads(bundles, tmp_path):
    """Section ``tta`` of meta.json (boneage.bundle.TTASpec): the default count of every path
    (predict, the batch workers) and the one the TTA-spread score is judged at; an explicit
    ``tta`` still wins; bundles without the section keep 8; a malformed one is one line."""
    from boneage.batch import score
    from boneage.predict import PredictionError, Predictor

    assert Predictor.load(bundles[0]).tta == 8
    b = _copy_bundle(bundles[0], tmp_path / "tta4")
    bundle.write_meta(b, bundle.read_meta(b).with_section(bundle.TTA_SECTION, bundle.TTASpec(4).to_section("a test")))
    p = Predictor.load(b)
    assert p.tta == 4
    r = p.predict(THUMB, sex="F", accept_unusual=True)
    assert len(r.tta_predictions) == 4
    assert "tta_sd_months" in r.acceptance.scores  # judged: the count the bundle was calibrated on
    r2 = p.predict(THUMB, sex="F", tta=2, accept_unusual=True)
    assert len(r2.tta_predictions) == 2 and "tta_sd_months" not in r2.acceptance.scores
    s = score(p, [THUMB], tmp_path / "out.csv", sex="F", workers=1, progress=False)
    assert s.predicted == 1
    row = next(iter(__import__("csv").DictReader(open(tmp_path / "out.csv"))))
    assert float(row["bone_age_months"]) == pytest.approx(r.bone_age_months, abs=0.05)  # the same 4 copies
    for bad in (0, 9, 2.5, "4", True):
        c = _copy_bundle(bundles[0], tmp_path / f"bad{bad!s}")
        bundle.write_meta(c, bundle.read_meta(c).with_section(bundle.TTA_SECTION, {"copies": bad}))
        with pytest.raises(PredictionError) as e:
            Predictor.load(c)
        assert "\n" not in str(e.value) and "section 'tta'" in str(e.value)
