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
- ``BONEAGE_RUNTIME=keras`` selects the TensorFlow path (parity checks, debugging); non-TensorFlow
  Keras backends (a GPU machine's torch/JAX) always use Keras.
- One interpreter per network, resized when the batch size changes (the TTA batch is constant;
  batch scoring changes it only for its last chunk). Not thread-safe: the Predictor's lock
  serialises calls, as it did for TensorFlow.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import paths

log = logging.getLogger(__name__)

RUNTIME_VERSION = 1  # bump when the conversion below changes (it is part of the cache key)
PROBE_TOLERANCE = {"months": 0.05, "attention": 1e-3, "pooled": 1e-3}  # measured differences: 3e-4, 4e-5, 3e-5
OUTPUT_NAMES = ("months", "attention", "pooled")  # what boneage.model.with_explanation_outputs returns
ENV = "BONEAGE_RUNTIME"  # "litert" (default) or "keras"

Outputs = tuple[np.ndarray, np.ndarray, np.ndarray]


def requested() -> str:
    """The runtime asked for by ``$BONEAGE_RUNTIME`` ("litert" unless set to "keras")."""
    from .checks import ParameterError

    v = os.environ.get(ENV, "litert").strip().lower()
    if v not in ("litert", "keras"):
        raise ParameterError(f"{ENV}={v!r}: expected 'litert' or 'keras'")
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
    for w in net.get_weights():
        a = np.ascontiguousarray(w)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def convert(net) -> bytes:
    """The network's inference call as a LiteRT flatbuffer, its variables frozen into constants.

    The converter numbers the outputs in its own order; :func:`_output_order` maps them back to
    the Keras outputs (:data:`OUTPUT_NAMES`) by shape when the interpreter is built.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    inputs = _input_specs(net)
    specs = [tf.TensorSpec((None, *shape[1:]), tf.float32, name=name) for name, shape in inputs]
    names = [n for n, _ in inputs]

    def call(*xs):
        return net(dict(zip(names, xs)), training=False)

    frozen = convert_variables_to_constants_v2(tf.function(call).get_concrete_function(*specs))
    return tf.lite.TFLiteConverter.from_concrete_functions([frozen], net).convert()


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

    @classmethod
    def build(cls, net, runtime: str | None = None) -> "LiteNetwork":
        """``net``: a Keras network with the three explanation outputs (``with_explanation_outputs``)."""
        import keras

        keras_call = _keras_call(net)
        want = runtime or requested()
        if want == "keras":
            return cls("keras", f"{ENV}=keras", keras_call)
        if keras.backend.backend() != "tensorflow":
            return cls("keras", f"Keras backend {keras.backend.backend()} (LiteRT needs TensorFlow's converter)", keras_call)
        from ._quiet import silenced_fd2

        with silenced_fd2():  # the converter's and the XNNPACK delegate's C++ notices are not for users
            me, reason = cls._checked_lite(net, keras_call)
        if me is None:
            log.warning("%s; using TensorFlow", reason)
            return cls("keras", reason, keras_call)
        return me

    @classmethod
    def _checked_lite(cls, net, keras_call) -> tuple["LiteNetwork | None", str | None]:
        """The LiteRT network if it converts and passes the probe check, else ``(None, reason)``."""
        try:
            from ai_edge_litert.interpreter import Interpreter

            it = Interpreter(model_content=cached_flatbuffer(net), num_threads=_threads())
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
        me = cls("litert", None, keras_call, it, inputs, _out_index=[d["index"] for d in it.get_output_details()])
        probe = _probe(specs)
        ref = tuple(np.asarray(v) for v in net(probe, training=False))  # eager: no trace for a one-off call
        got = me._lite(probe, order=None)
        order = _output_order(ref, got)
        if order is None:
            return None, "LiteRT outputs do not match the Keras outputs' shapes"
        me._outputs = tuple(me._out_index[i] for i in order)
        for name, r, g in zip(OUTPUT_NAMES, ref, (got[i] for i in order)):
            err = float(np.max(np.abs(r - g)))
            if not np.isfinite(err) or err > PROBE_TOLERANCE[name]:
                return None, f"LiteRT {name} differ from Keras by {err:.3g} on the probe batch"
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
        if self.runtime != "litert":
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
