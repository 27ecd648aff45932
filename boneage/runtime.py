"""The networks' forward pass at serving time: LiteRT (TensorFlow Lite, XNNPACK kernels) on the CPU.

Why: the model part of a prediction (the TTA copies through the bundle's networks) was the
largest single cost after decoding (issue 13, item 5; issue 9's 60 ms model budget). The same
frozen graph on the LiteRT interpreter reads **about 3× faster** than TensorFlow's cached
``tf.function`` on these 2 cores, with the same numbers: measured 2026-11-29 on the shipped pair
(one network at 160×128, the member resized inside to 224×176), medians of 30 calls back to back
(``bench/predict.py`` times both runtimes in one run):

    copies (shared by the two)   TensorFlow tf.function   LiteRT (XNNPACK, 2 threads)   largest difference
    4                            50–63 ms                 15–20 ms                      3e-4 months
    8 (the bundle's count)       72–104 ms                27–38 ms                      3e-4 months

Through ``boneage evaluate`` on the 1,707 validation ids (4-copy bundle) both runtimes gave MAE
8.792 with the same 11 refusals; the largest difference of any prediction was 2e-4 months.

Decisions:
- **One source of truth stays the Keras bundle** (``models/*.keras``). The LiteRT graph is derived
  from the loaded network when a :class:`~boneage.predict.Predictor` is built (variables frozen
  into constants, then converted: ≈ 3 s per network on 2 cores) and kept in the cache folder
  under a key made of the network's architecture and weights, this module's
  :data:`RUNTIME_VERSION` and the converter's version, so a changed model can never be served by
  a stale graph and later loads take a fraction of a second. Nothing extra ships in ``models/``
  (its 60 MB budget).
- **Checked before it is trusted.** Every converted network is compared with the Keras network on
  a fixed probe batch; if any output differs by more than :data:`PROBE_TOLERANCE`, the Keras path
  is used and the reason is kept in :attr:`LiteNetwork.fallback_reason` (and logged). Why a check
  and not faith: Keras's own ``model.export()`` wrote a SavedModel of the resized ensemble member
  that read 76 months off (the nested backbone behind the ``Resizing`` layer); freezing the
  traced call, as done here, matches to 3e-4 months on both networks.
- **int8 where the bundle holds it** (section ``int8`` of ``meta.json``, :class:`boneage.bundle.Int8Spec`):
  a network the bundle also ships as an int8 graph (:func:`quantize_int8`, made by
  ``scripts/quantize_member.py`` from training radiographs) runs on XNNPACK's int8 kernels. Only the
  224×176 ensemble member is shipped so (2026-12-05): the pair's model part went from 24–27 to
  19–20 ms (``bench/predict.py``, two runs of each back to back) and ``boneage evaluate`` on the
  validation ids from 8.633 to 8.637 months. ``model.keras`` (network 0, whose copy-0 attention map
  and pooled features the app shows and the acceptance check compares) stays float. Quantising more
  was faster and less faithful: both networks int8 (stem, first block and head float) took 13.8
  against 23.5 ms and read 0.77 months from the float reading per image (300 validation ids); the
  member alone with fewer float layers, see :data:`INT8_FLOAT_LAYERS`. The graph is used only for
  the weights it was made from (:func:`weights_sha256`, kept in the section) and after its own probe
  check (:data:`INT8_PROBE_TOLERANCE`); otherwise the float graph serves, with the reason logged.
- ``BONEAGE_RUNTIME=keras`` selects the TensorFlow path (parity checks, debugging) and
  ``BONEAGE_RUNTIME=litert-float`` the float LiteRT graphs even where the bundle holds int8 ones;
  non-TensorFlow Keras backends (a GPU machine's torch/JAX) always use Keras.
- One interpreter per network, resized when the batch size changes (the TTA batch is constant;
  batch scoring changes it only for its last chunk). Not thread-safe: the Predictor's lock
  serialises calls, as it did for TensorFlow.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from . import paths

log = logging.getLogger(__name__)

RUNTIME_VERSION = 1  # bump when the conversion below changes (it is part of the cache key)
PROBE_TOLERANCE = {"months": 0.05, "attention": 1e-3, "pooled": 1e-3}  # measured differences: 3e-4, 4e-5, 3e-5
# An int8 graph reads close to, not exactly as, its float network: the shipped member's 4-copy mean
# 0.83–0.99 months off per image on 300 validation ids (largest 6.3), and on the probe batch's
# uniform noise, further from the radiographs it was calibrated on, 0.68 months, 0.24 in its
# attention map, 0.14 in its pooled features (2026-12-05). These bounds catch a broken graph (the
# Keras export that read 76 months off), not quantisation noise.
INT8_PROBE_TOLERANCE = {"months": 6.0, "attention": 0.5, "pooled": 0.6}
OUTPUT_NAMES = ("months", "attention", "pooled")  # what boneage.model.with_explanation_outputs returns
ENV = "BONEAGE_RUNTIME"  # "litert" (default), "litert-float" or "keras"
RUNTIMES = ("litert", "litert-float", "keras")
# Layers an int8 graph keeps in float (substrings of the converter's tensor names): the grey input
# and ImageNet normalisation, the member's resize, the stem and the first five blocks, and everything
# after the backbone (attention, sex branch, head), which costs nothing next to it. Why these: the
# stem's output was 4.2 quantisation steps off and the first blocks' depthwise layers 0.5–1.8, every
# later layer ≤ 0.5 (QuantizationDebugger, 32 training images). Measured on the shipped member
# through `boneage evaluate` (validation, 2026-12-05; float: MAE 8.633, ages 0–6 y 8.42, bias +0.52):
#   stem + block 0 float:        8.664, 0–6 y 8.82, bias +0.76; member 4 copies 15.5 → 8.7 ms
#   stem + blocks 0–2 float:     8.65,  0–6 y 8.72, bias +0.66
#   stem + blocks 0–4 float:     8.637, 0–6 y 8.51, bias +0.50 (shipped: the youngest read as before)
INT8_FLOAT_LAYERS = ("grey_to_rgb", "imagenet_norm", "input_resize", "conv_stem", "stem_relu",
                     "blocks_0_", "blocks_1_", "blocks_2_", "blocks_3_", "blocks_4_",
                     "feature_bn", "attention", "sex_dense", "concat", "head_", "bone_age")

Outputs = tuple[np.ndarray, np.ndarray, np.ndarray]


def requested() -> str:
    """The runtime asked for by ``$BONEAGE_RUNTIME`` ("litert" unless set to "keras")."""
    from .checks import ParameterError

    v = os.environ.get(ENV, "litert").strip().lower()
    if v not in RUNTIMES:
        raise ParameterError(f"{ENV}={v!r}: expected " + ", ".join(f"'{r}'" for r in RUNTIMES))
    return v


def _threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _keras_call(net) -> Callable[[dict], Outputs]:
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        fn = tf.function(lambda x: net(x, training=False), reduce_retracing=True)
    else:
        fn = lambda x: net(x, training=False)  # noqa: E731
    return lambda x: tuple(np.asarray(v) for v in fn(x))


def _input_specs(net) -> list[tuple[str, tuple]]:
    import keras

    return [(t.name, tuple(t.shape)) for t in keras.tree.flatten(net.inputs)]


def cache_key(net) -> str:
    """Architecture + weights + this module's and the converter's versions, as a sha256 hex."""
    import tensorflow as tf

    h = hashlib.sha256()
    h.update(f"runtime {RUNTIME_VERSION} tf {tf.__version__}\n".encode())
    h.update(net.to_json().encode())
    _hash_weights(h, net)
    return h.hexdigest()


def weights_sha256(net) -> str:
    """sha256 of a network's weights (dtype, shape and bytes of each, in order): what an int8 graph
    was made from, so it is never used for other weights. Independent of the TensorFlow version,
    unlike :func:`cache_key`, because the int8 graph ships with the bundle."""
    h = hashlib.sha256()
    _hash_weights(h, net)
    return h.hexdigest()


def _hash_weights(h, net) -> None:
    for w in net.get_weights():
        a = np.ascontiguousarray(w)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())


def _frozen(net):
    """The network's inference call with its variables frozen into constants (batch size free)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    inputs = _input_specs(net)
    specs = [tf.TensorSpec((None, *shape[1:]), tf.float32, name=name) for name, shape in inputs]
    names = [n for n, _ in inputs]

    def call(*xs):
        return net(dict(zip(names, xs)), training=False)

    return convert_variables_to_constants_v2(tf.function(call).get_concrete_function(*specs))


def quantize_int8(net, samples: Callable[[], Iterable[dict]], float_layers: tuple[str, ...] = INT8_FLOAT_LAYERS) -> bytes:
    """The network as an int8 LiteRT graph (float inputs and outputs), calibrated on ``samples``:
    a callable returning an iterable of one-row input dicts (``{"image": (1, H, W, 1), "male": (1, 1)}``),
    the images as the pipeline and TTA make them. ``float_layers`` (default :data:`INT8_FLOAT_LAYERS`)
    stay float.

    Full-integer kernels, not dynamic-range weights: the latter ran 2× *slower* on XNNPACK here
    (54 against 24 ms for the pair's 8 copies).
    """
    import tensorflow as tf

    frozen = _frozen(net)
    order = [n for n, _ in _input_specs(net)]
    float_graph = tf.lite.TFLiteConverter.from_concrete_functions([frozen], net).convert()
    from ai_edge_litert.interpreter import Interpreter

    float_it = Interpreter(model_content=float_graph)
    # The converter feeds a concrete function's inputs in its own order: match it by name.
    feed = [next(n for n in order if d["name"].split(":")[0].endswith(n)) for d in float_it.get_input_details()]
    names = [d["name"] for d in float_it.get_tensor_details()]
    keep_float = [n for n in names if any(k in n for k in float_layers)]

    def rep():
        for x in samples():
            yield [np.asarray(x[n], np.float32) for n in feed]

    conv = tf.lite.TFLiteConverter.from_concrete_functions([frozen], net)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    with warnings.catch_warnings():  # the debugger builds tf.lite.Interpreter itself, which warns it is deprecated
        warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter is deprecated")
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=conv, debug_dataset=rep,
            debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=keep_float))
        return debugger.get_nondebug_quantized_model()


def convert(net) -> bytes:
    """The network's inference call as a LiteRT flatbuffer, its variables frozen into constants.

    The converter numbers the outputs in its own order; :func:`_output_order` maps them back to
    the Keras outputs (:data:`OUTPUT_NAMES`) by shape when the interpreter is built.
    """
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_concrete_functions([_frozen(net)], net).convert()


def cached_flatbuffer(net) -> bytes:
    """:func:`convert`, kept in ``cache_dir()/litert`` under :func:`cache_key` (written atomically)."""
    try:
        folder = paths.cache_dir() / "litert"
    except OSError as e:  # a read-only install still serves: it converts at every load
        log.warning("LiteRT cache unavailable: %s", e)
        return convert(net)
    f = folder / f"{cache_key(net)}.tflite"
    if f.is_file():
        return f.read_bytes()
    blob = convert(net)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".part", delete=False) as tmp:
            tmp.write(blob)
        os.replace(tmp.name, f)
    except OSError as e:  # a read-only checkout still serves; it converts again next time
        log.warning("LiteRT cache not written (%s): %s", folder, e)
    return blob


def _probe(specs: list[tuple[str, tuple]], n: int = 3) -> dict[str, np.ndarray]:
    """A fixed batch: uniform random images and both sexes (seeded, so a failure repeats)."""
    rng = np.random.default_rng(20261129)
    out = {}
    for name, shape in specs:
        if len(shape) == 4:
            out[name] = rng.random((n, *shape[1:]), dtype=np.float32)
        else:
            out[name] = (np.arange(n) % 2).astype(np.float32).reshape(n, *([1] * (len(shape) - 1)))
    return out


@dataclass
class LiteNetwork:
    """One network's forward pass: ``net_call({"image": …, "male": …}) -> (months, attention, pooled)``.

    Runs on LiteRT when it converted and passed the probe check, else on Keras/TensorFlow; which
    one is in :attr:`runtime`, and why not LiteRT in :attr:`fallback_reason`.
    """

    runtime: str
    fallback_reason: str | None
    _keras: Callable[[dict], Outputs]
    _interpreter: object | None = None
    _inputs: dict | None = None  # input name -> interpreter tensor index
    _outputs: tuple[int, int, int] | None = None  # interpreter output indices, OUTPUT_NAMES order
    _out_index: list[int] | None = None  # interpreter output indices, in its own order (fixed by resizing)
    _batch: int = -1

    int8_reason: str | None = None  # why a bundle's int8 graph is not used (None: used, or none held)

    @classmethod
    def build(cls, net, runtime: str | None = None, int8: "tuple[bytes, str] | None" = None) -> "LiteNetwork":
        """``net``: a Keras network with the three explanation outputs (``with_explanation_outputs``).

        ``int8``: the bundle's int8 graph of this network and the :func:`weights_sha256` it was made
        from (:func:`boneage.bundle.load_int8`); used on ``litert`` when the weights match and it
        passes its probe check, else the float graph serves and :attr:`int8_reason` says why.
        """
        import keras

        keras_call = _keras_call(net)
        want = runtime or requested()
        if want == "keras":
            return cls("keras", f"{ENV}=keras", keras_call)
        if keras.backend.backend() != "tensorflow":
            return cls("keras", f"Keras backend {keras.backend.backend()} (LiteRT needs TensorFlow's converter)", keras_call)
        from ._quiet import silenced_fd2

        int8_reason = None
        if int8 is not None and want == "litert":
            blob, sha = int8
            if weights_sha256(net) != sha:
                int8_reason = "the int8 graph was made from other weights"
            else:
                with silenced_fd2():
                    me, int8_reason = cls._checked_lite(net, keras_call, blob, INT8_PROBE_TOLERANCE, kind="litert-int8")
                if me is not None:
                    return me
            log.warning("int8 graph not used: %s; using the float graph", int8_reason)
        with silenced_fd2():  # the converter's and the XNNPACK delegate's C++ notices are not for users
            me, reason = cls._checked_lite(net, keras_call)
        if me is None:
            log.warning("%s; using TensorFlow", reason)
            return cls("keras", reason, keras_call, int8_reason=int8_reason)
        me.int8_reason = int8_reason
        return me

    @classmethod
    def _checked_lite(cls, net, keras_call, blob: bytes | None = None, tolerance: dict | None = None,
                      kind: str = "litert") -> tuple["LiteNetwork | None", str | None]:
        """The LiteRT network (``blob``, else the float graph converted from ``net``) if it loads and
        passes the probe check within ``tolerance``, else ``(None, reason)``."""
        try:
            from ai_edge_litert.interpreter import Interpreter

            it = Interpreter(model_content=blob if blob is not None else cached_flatbuffer(net), num_threads=_threads())
        except Exception as e:  # noqa: BLE001 - any failure of the optional fast path falls back, with its reason
            first = str(e).splitlines()[0] if str(e) else ""
            return None, f"LiteRT unavailable: {type(e).__name__}: {first}"
        specs = _input_specs(net)
        by_name = {d["name"]: d["index"] for d in it.get_input_details()}
        inputs = {}
        for name, _ in specs:
            hit = [idx for tname, idx in by_name.items() if tname.split(":")[0].endswith(name)]
            if len(hit) != 1:
                return None, f"LiteRT input {name!r} not found among {sorted(by_name)}"
            inputs[name] = hit[0]
        me = cls(kind, None, keras_call, it, inputs, _out_index=[d["index"] for d in it.get_output_details()])
        probe = _probe(specs)
        ref = tuple(np.asarray(v) for v in net(probe, training=False))  # eager: no trace for a one-off call
        got = me._lite(probe, order=None)
        order = _output_order(ref, got)
        if order is None:
            return None, "LiteRT outputs do not match the Keras outputs' shapes"
        me._outputs = tuple(me._out_index[i] for i in order)
        for name, r, g in zip(OUTPUT_NAMES, ref, (got[i] for i in order)):
            err = float(np.max(np.abs(r - g)))
            if not np.isfinite(err) or err > (tolerance or PROBE_TOLERANCE)[name]:
                what = "LiteRT" if kind == "litert" else f"LiteRT ({kind})"
                return None, f"{what} {name} differ from Keras by {err:.3g} on the probe batch"
        return me, None

    def _lite(self, x: dict, order) -> list[np.ndarray]:
        it = self._interpreter
        n = len(next(iter(x.values())))
        if n != self._batch:
            for name, idx in self._inputs.items():
                it.resize_tensor_input(idx, [n, *np.shape(x[name])[1:]])
            it.allocate_tensors()
            self._batch = n
        for name, idx in self._inputs.items():
            it.set_tensor(idx, np.ascontiguousarray(x[name], np.float32))
        it.invoke()
        idxs = self._out_index if order is None else order
        return [it.get_tensor(i) for i in idxs]

    def __call__(self, x: dict) -> Outputs:
        if self._interpreter is None:
            return self._keras(x)
        return tuple(self._lite(x, self._outputs))


def _output_order(ref: Outputs, got: list[np.ndarray]) -> list[int] | None:
    """For each Keras output, the LiteRT output of the same shape (the shapes are all different)."""
    order = []
    for r in ref:
        hit = [i for i, g in enumerate(got) if g.shape == r.shape]
        if len(hit) != 1:
            return None
        order.append(hit[0])
    return order if sorted(order) == list(range(len(got))) else None
