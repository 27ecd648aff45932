"""The serving runtime (boneage.runtime): LiteRT reads like Keras, is cached by content, and falls
back to TensorFlow with a reason whenever it cannot be trusted."""
from __future__ import annotations

import numpy as np
import pytest

from boneage import runtime
from boneage.paths import FIXTURES_DIR, MODELS_DIR

pytest.importorskip("ai_edge_litert")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BONEAGE_CACHE", str(tmp_path))
    monkeypatch.delenv(runtime.ENV, raising=False)
    return tmp_path / "litert"


@pytest.fixture(scope="module")
def net():
    import keras

    from boneage.model import build_model, with_explanation_outputs

    keras.utils.set_random_seed(3)
    return with_explanation_outputs(build_model("tiny", (160, 128), weights=None))


def _batch(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"image": rng.random((n, 160, 128, 1), dtype=np.float32),
            "male": (rng.random((n, 1)) > 0.5).astype(np.float32)}


def _keras(net, x):
    return [np.asarray(v) for v in net(x, training=False)]


def test_litert_reads_like_keras_at_any_batch_size(net, cache):
    fn = runtime.LiteNetwork.build(net)
    assert fn.runtime == "litert" and fn.fallback_reason is None
    for n in (1, 2, 5, 2, 64):  # resized in place, back and forth
        x = _batch(n, seed=n)
        got, ref = fn(x), _keras(net, x)
        assert [g.shape for g in got] == [r.shape for r in ref]  # months, attention map, pooled features
        for g, r in zip(got, ref):
            np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-3)


def test_converted_graph_is_cached_under_a_content_key(net, cache, monkeypatch):
    runtime.LiteNetwork.build(net)
    files = list(cache.glob("*.tflite"))
    assert len(files) == 1 and files[0].stem == runtime.cache_key(net)

    def no_conversion(_):
        raise AssertionError("converted again although cached")

    monkeypatch.setattr(runtime, "convert", no_conversion)
    assert runtime.LiteNetwork.build(net).runtime == "litert"

    import keras

    other = keras.models.clone_model(net)
    other.set_weights([w + 0.01 for w in net.get_weights()])
    assert runtime.cache_key(other) != runtime.cache_key(net)  # new weights never meet a stale graph


def test_conversion_failure_falls_back_to_tensorflow_with_the_reason(net, cache, monkeypatch):
    def broken(_):
        raise RuntimeError("converter exploded")

    monkeypatch.setattr(runtime, "convert", broken)
    fn = runtime.LiteNetwork.build(net)
    assert fn.runtime == "keras" and "converter exploded" in fn.fallback_reason
    x = _batch(3)
    for g, r in zip(fn(x), _keras(net, x)):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5)


def test_a_graph_that_disagrees_with_keras_is_not_used(net, cache, monkeypatch):
    monkeypatch.setattr(runtime, "PROBE_TOLERANCE", {k: -1.0 for k in runtime.PROBE_TOLERANCE})
    fn = runtime.LiteNetwork.build(net)
    assert fn.runtime == "keras" and "differ from Keras" in fn.fallback_reason


def test_environment_selects_the_runtime(net, cache, monkeypatch):
    monkeypatch.setenv(runtime.ENV, "keras")
    fn = runtime.LiteNetwork.build(net)
    assert fn.runtime == "keras" and fn.fallback_reason == "BONEAGE_RUNTIME=keras"
    monkeypatch.setenv(runtime.ENV, "litert-float")
    assert runtime.LiteNetwork.build(net).runtime == "litert"
    monkeypatch.setenv(runtime.ENV, "onnx")
    with pytest.raises(ValueError, match="expected 'litert', 'litert-float', 'keras'"):
        runtime.requested()


def test_shipped_bundle_reads_the_same_on_both_runtimes(monkeypatch):
    """The whole prediction (pipeline, TTA, ensemble, acceptance, interval) on the float LiteRT graphs
    and on TensorFlow."""
    if not (MODELS_DIR / "model.keras").is_file():
        pytest.skip("no shipped model")
    from boneage.predict import Predictor

    monkeypatch.setenv(runtime.ENV, "litert-float")
    lite = Predictor.load(MODELS_DIR)
    monkeypatch.setenv(runtime.ENV, "keras")
    tf = Predictor.load(MODELS_DIR)
    assert lite.runtime == "litert" and tf.runtime.startswith("keras")
    for name, sex in (("1437.png", "F"), ("1391.png", "M")):
        f = FIXTURES_DIR / "hires" / name
        if not f.is_file():
            continue
        a, b = lite.predict(f, sex), tf.predict(f, sex)
        assert abs(a.bone_age_months - b.bone_age_months) < 0.01
        assert a.interval_90_months == pytest.approx(b.interval_90_months, abs=0.01)
        assert a.acceptance.accepted == b.acceptance.accepted
        np.testing.assert_allclose(a.attention_map, b.attention_map, atol=1e-3)


def test_an_unwritable_cache_still_serves_litert(net, monkeypatch, tmp_path):
    from boneage import paths

    def no_cache():
        raise PermissionError("read-only checkout")

    monkeypatch.delenv(runtime.ENV, raising=False)
    monkeypatch.setattr(paths, "cache_dir", no_cache)
    assert runtime.LiteNetwork.build(net).runtime == "litert"


# --------------------------------------------------------------------------- int8 graphs


@pytest.fixture(scope="module")
def int8_graph(net):
    """The tiny network quantised on a few images (the converter's calibration path, end to end)."""
    samples = [{"image": _batch(1, seed=s)["image"], "male": np.full((1, 1), s % 2, np.float32)} for s in range(8)]
    return runtime.quantize_int8(net, lambda: iter(samples)), runtime.weights_sha256(net)


def test_an_int8_graph_serves_the_weights_it_was_made_from(net, int8_graph, cache, monkeypatch):
    # The tiny untrained network, calibrated on 8 noise images, reads up to ~8 "months" off on the
    # probe; the shipped member 0.68 (boneage.runtime). The bound here only has to hold the graph.
    monkeypatch.setattr(runtime, "INT8_PROBE_TOLERANCE", {"months": 30.0, "attention": 1.0, "pooled": 10.0})
    fn = runtime.LiteNetwork.build(net, int8=int8_graph)
    assert fn.runtime == "litert-int8" and fn.fallback_reason is None and fn.int8_reason is None
    x = _batch(4, seed=11)
    got, ref = fn(x), _keras(net, x)
    assert [g.shape for g in got] == [r.shape for r in ref]
    assert np.max(np.abs(got[0] - ref[0])) < runtime.INT8_PROBE_TOLERANCE["months"]
    assert not np.array_equal(got[0], runtime.LiteNetwork.build(net, "litert")(x)[0])  # really the int8 graph

    import keras

    other = keras.models.clone_model(net)
    other.set_weights([w + 0.01 for w in net.get_weights()])
    assert runtime.weights_sha256(other) != int8_graph[1]
    fn = runtime.LiteNetwork.build(other, int8=int8_graph)  # another network's graph is never used
    assert fn.runtime == "litert" and fn.int8_reason == "the int8 graph was made from other weights"


def test_an_int8_graph_that_fails_its_probe_or_is_not_asked_for_leaves_the_float_graph(net, int8_graph, cache,
                                                                                         monkeypatch):
    monkeypatch.setattr(runtime, "INT8_PROBE_TOLERANCE", {k: -1.0 for k in runtime.INT8_PROBE_TOLERANCE})
    fn = runtime.LiteNetwork.build(net, int8=int8_graph)
    assert fn.runtime == "litert" and "LiteRT (litert-int8)" in fn.int8_reason and "differ" in fn.int8_reason
    monkeypatch.undo()
    monkeypatch.setenv(runtime.ENV, "litert-float")
    fn = runtime.LiteNetwork.build(net, int8=int8_graph)
    assert fn.runtime == "litert" and fn.int8_reason is None
    monkeypatch.setenv(runtime.ENV, "keras")
    assert runtime.LiteNetwork.build(net, int8=int8_graph).runtime == "keras"


def test_shipped_bundle_on_its_int8_member_reads_close_to_the_float_graphs(monkeypatch):
    """Network 0 stays float (its attention map and pooled features, what the app shows and the
    acceptance check compares, are unchanged); the member's int8 graph moves the reading by a
    fraction of a month (validation: 8.633 → 8.637 MAE, README)."""
    if not (MODELS_DIR / "model.keras").is_file():
        pytest.skip("no shipped model")
    from boneage import bundle
    from boneage.predict import Predictor

    if bundle.Int8Spec.from_meta(bundle.read_meta(MODELS_DIR)) is None:
        pytest.skip("the shipped bundle holds no int8 graph")
    monkeypatch.delenv(runtime.ENV, raising=False)
    fast = Predictor.load(MODELS_DIR)
    monkeypatch.setenv(runtime.ENV, "litert-float")
    flt = Predictor.load(MODELS_DIR)
    assert fast.engines == (("litert", None), ("litert-int8", None)) and flt.engines == (("litert", None),) * 2
    for name, sex in (("1437.png", "F"), ("1391.png", "M")):
        f = FIXTURES_DIR / "hires" / name
        if not f.is_file():
            continue
        a, b = fast.predict(f, sex), flt.predict(f, sex)
        assert 0 < abs(a.bone_age_months - b.bone_age_months) < 2.0
        assert a.acceptance.accepted == b.acceptance.accepted
        np.testing.assert_array_equal(a.attention_map, b.attention_map)
