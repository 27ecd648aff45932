"""``boneage serve``: the REST service (FastAPI + uvicorn) for PACS integrators and pipelines.

Endpoints (OpenAPI at ``/openapi.json``, interactive docs at ``/docs``):

* ``GET /health`` — model version, limits, requests in flight.
* ``POST /v1/predict`` — multipart ``file`` (PNG/JPEG/BMP/TIFF/DICOM) + ``sex`` + the optional
  clinical fields; answers the JSON of ``boneage predict --json`` (one object, ``file`` = the
  upload's name). ``output=dicom`` answers a ZIP of DICOM objects instead (see :mod:`boneage.dicom_out`).

Decisions, so integrators can rely on them:

* **One model, loaded before the port opens.** ``boneage serve`` loads the bundle and runs one
  warm-up prediction (the networks are ready: LiteRT interpreters, :mod:`boneage.runtime`) before uvicorn binds, so the first
  request costs what every other does and a broken bundle fails at start, not at the first call.
* **Errors are JSON ``{"error": "..."}``, one line.** Bad input is 4xx: 413 upload too large,
  422 not an image / unreadable image / missing sex / bad clinical field / refused image, 503
  busy. A bug is a 500 whose body is still one line — never a traceback.
* **Upload size is limited before the body is read**: a ``Content-Length`` above the limit is
  refused at once, and a chunked body is counted as it arrives and cut at the limit (ASGI
  middleware below), so a client cannot make the server spool gigabytes.
* **Bounded concurrency and memory.** At most ``workers`` predictions run at once (decode and
  pipeline in threads — OpenCV and the PNG decoders release the GIL — the model call serialised
  by the Predictor's lock) and at most ``queue`` more wait; beyond that the answer is 503 at once
  rather than an unbounded queue of decoded images; decodes are further bounded by the loader's
  own ``boneage.io.DECODE_SLOTS``. A full-size radiograph costs ≈ 0.2 GB while
  it is processed, so the peak is about ``workers`` × 0.2 GB above the ≈ 1 GB of the loaded model.
* **Localhost by default**: this is research software without authentication; exposing it is an
  explicit ``--host 0.0.0.0``.
"""
import datetime as _dt
import os
import threading
from dataclasses import dataclass
from typing import Annotated, Any


from . import __version__
from .io import MAX_BYTES

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
MULTIPART_SLACK = 64 * 1024  # form fields and part headers on top of the file itself


@dataclass(frozen=True)
class ServeConfig:
    """Limits of one service instance (``boneage serve`` flags)."""

    max_upload_bytes: int = MAX_BYTES
    workers: int = max(1, os.cpu_count() or 1)  # predictions running at once
    queue: int = 0  # predictions allowed to wait beyond ``workers`` (default: 4 × workers)
    tta: int | None = None  # test-time augmentation copies (None: the Predictor's default)

    def __post_init__(self) -> None:
        """Checked here so ``boneage serve`` flags and a ServeConfig built in Python fail the same way
        (one line). An upload limit above the loader's own (boneage.io.MAX_BYTES, 10⁸ bytes) would
        accept files only to refuse them after reading."""
        from .checks import check_int
        from .predict import MAX_TTA

        object.__setattr__(self, "max_upload_bytes", check_int(self.max_upload_bytes, "max_upload_bytes", lo=1,
                                                               hi=MAX_BYTES))
        object.__setattr__(self, "workers", check_int(self.workers, "workers", lo=1, hi=256, flag="--workers"))
        object.__setattr__(self, "queue", check_int(self.queue, "queue", lo=0, hi=100_000, flag="--queue"))
        if self.tta is not None:
            object.__setattr__(self, "tta", check_int(self.tta, "tta", lo=1, hi=MAX_TTA, flag="--tta"))

    @property
    def max_waiting(self) -> int:
        return self.queue if self.queue > 0 else 4 * self.workers


class ServiceError(Exception):
    """Bad request with a one-line reason and its HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class _Gate:
    """Admission control: ``running`` ≤ workers, ``running + waiting`` ≤ workers + queue.

    A semaphore alone would queue without bound; refusing at the door keeps memory bounded
    and tells a batch client to back off (503) instead of timing out.
    """

    def __init__(self, workers: int, max_waiting: int):
        self.limit = workers + max_waiting
        self._sem = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self.in_flight = 0

    def enter(self) -> None:
        with self._lock:
            if self.in_flight >= self.limit:
                raise ServiceError(503, f"busy: {self.in_flight} requests in flight (limit {self.limit}); retry later")
            self.in_flight += 1

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


def _json_error(status: int, message: str):
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=status, content={"error": message})


class _UploadLimit:
    """Pure-ASGI middleware: refuse bodies over ``max_bytes`` before they are read (413)."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit_mb = self.max_bytes / 1e6
        headers = dict(scope.get("headers") or [])
        cl = headers.get(b"content-length")
        if cl is not None:
            try:
                n = int(cl)
            except ValueError:
                return await _json_error(400, "Content-Length is not a number")(scope, receive, send)
            if n > self.max_bytes:
                msg = f"upload is {n / 1e6:.1f} MB; the limit is {limit_mb:.0f} MB"
                return await _json_error(413, msg)(scope, receive, send)
        seen = 0
        started = False

        async def counted_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _too_large(f"upload exceeds the limit of {limit_mb:.0f} MB")
            return message

        async def tracked_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        from starlette.exceptions import HTTPException

        try:
            await self.app(scope, counted_receive, tracked_send)
        except HTTPException as e:  # raised by counted_receive outside a route's exception handlers
            if started or e.status_code != 413:
                raise
            await _json_error(413, str(e.detail))(scope, receive, send)


def _too_large(message: str) -> Exception:
    """413 raised from inside the body stream: an HTTPException, so FastAPI's body parser passes
    it on (it turns any other exception into a generic 400) and our handler formats it."""
    from starlette.exceptions import HTTPException

    return HTTPException(413, message)


def _error_text(exc) -> str:
    """FastAPI's validation errors as one line: ``sex: ...; file: Field required``."""
    parts = []
    for e in exc.errors():
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "form")]
        parts.append(f"{'.'.join(loc) or 'request'}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def create_app(predictor, config: ServeConfig | None = None):
    """The FastAPI application around an already loaded :class:`boneage.predict.Predictor`."""
    from fastapi import FastAPI, File, Form, Query, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import Response
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from .clinical import ClinicalInputError, check_parent_heights
    from .io import ImageError
    from .pipeline import PIPELINE_VERSION
    from .predict import PredictionError

    cfg = config or ServeConfig()
    gate = _Gate(cfg.workers, cfg.max_waiting)
    error_responses: dict[int | str, dict[str, Any]] = {
        s: {"description": d, "content": {"application/json": {"example": {"error": d}}}}
        for s, d in ((413, "upload too large"),
                     (422, "not an image, unreadable image, missing sex, bad clinical field or refused image"),
                     (503, "busy: too many requests in flight; retry later"))
    }

    app = FastAPI(
        title="boneage",
        version=__version__,
        summary="Bone age from hand/wrist radiographs. Research software, not a medical device.",
    )
    app.state.predictor = predictor
    app.state.config = cfg
    app.state.gate = gate

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError):
        return _json_error(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        return _json_error(422, _error_text(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return _json_error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        return _json_error(500, f"unexpected {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")

    @app.get("/health")
    def health() -> dict:
        """Liveness and what is loaded."""
        return {
            "status": "ok",
            "boneage_version": __version__,
            "model_version": predictor.model_version,
            "pipeline_version": PIPELINE_VERSION,
            "runtime": predictor.runtime,  # "litert", or "keras (why not LiteRT)": boneage.runtime
            "in_flight": gate.in_flight,
            "limits": {"max_upload_bytes": cfg.max_upload_bytes, "workers": cfg.workers,
                       "max_in_flight": gate.limit},
        }

    @app.post("/v1/predict", responses=error_responses)
    async def predict(
        file: Annotated[UploadFile, File(description="radiograph: PNG, JPEG, BMP, TIFF or DICOM")],
        sex: Annotated[str | None, Form(description="M or F; optional when a DICOM gives PatientSex")] = None,
        age_months: Annotated[float | None, Form(description="chronological age in months")] = None,
        birth_date: Annotated[_dt.date | None, Form(description="YYYY-MM-DD")] = None,
        study_date: Annotated[_dt.date | None, Form(description="YYYY-MM-DD")] = None,
        height_cm: Annotated[float | None, Form(description="height, for the Bayley-Pinneau adult height")] = None,
        father_height_cm: Annotated[float | None, Form(description="father's height, for the target height")] = None,
        mother_height_cm: Annotated[float | None, Form(description="mother's height, for the target height")] = None,
        output: Annotated[str, Query(pattern="^(json|dicom)$",
                                     description="json (default) or dicom: a ZIP of DICOM results")] = "json",
    ):
        """Bone age for one radiograph: the JSON of ``boneage predict --json``."""
        name = file.filename or "upload"
        try:  # refused before the upload is read or a worker is taken
            check_parent_heights(father_height_cm, mother_height_cm)
        except ClinicalInputError as e:
            raise ServiceError(422, f"{name}: {e}") from None
        gate.enter()
        try:
            data = await file.read(cfg.max_upload_bytes + 1)
            if len(data) > cfg.max_upload_bytes:
                raise ServiceError(413, f"{name}: upload exceeds the limit of {cfg.max_upload_bytes / 1e6:.0f} MB")
            kwargs = dict(sex=sex, tta=cfg.tta, chronological_age_months=age_months, birth_date=birth_date,
                          study_date=study_date, height_cm=height_cm, father_height_cm=father_height_cm,
                          mother_height_cm=mother_height_cm, name=name)
            try:
                pred = await run_in_threadpool(_predict_bounded, gate, predictor, data, kwargs)
                if output == "dicom":
                    body = await run_in_threadpool(_dicom_zip, pred, data)
            except ImageError as e:
                raise ServiceError(422, str(e)) from None
            except (PredictionError, ClinicalInputError) as e:
                raise ServiceError(422, f"{name}: {e}") from None
        finally:
            gate.leave()
        if output == "dicom":
            stem = os.path.splitext(os.path.basename(name))[0] or "result"
            return Response(body, media_type="application/zip",
                            headers={"Content-Disposition": f'attachment; filename="{stem}_boneage_dicom.zip"'})
        return {"file": name, **pred.to_dict()}

    return app


def _predict_bounded(gate: _Gate, predictor, data: bytes, kwargs: dict):
    """Run one prediction holding one of the ``workers`` slots (bounded simultaneous decodes)."""
    with gate._sem:
        return predictor.predict(data, **kwargs)


def _dicom_zip(pred, data: bytes) -> bytes:
    from .dicom_out import dicom_results_zip

    return dicom_results_zip(pred, data)


def run(model: str | None, host: str, port: int, config: ServeConfig, log=print) -> None:
    """Load the model, warm it up, then serve until interrupted."""
    import uvicorn

    from .predict import Predictor

    pred = Predictor.load(model)
    pred.warm_up()
    log(f"boneage serve: model {pred.model_version} loaded; http://{host}:{port}/docs "
        f"(workers {config.workers}, upload limit {config.max_upload_bytes / 1e6:.0f} MB)")
    uvicorn.run(build_app(pred, config), host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)


def build_app(predictor, config: ServeConfig | None = None):
    """:func:`create_app` with the upload-size middleware, as ``boneage serve`` runs it."""
    cfg = config or ServeConfig()
    app = create_app(predictor, cfg)
    app.add_middleware(_UploadLimit, max_bytes=cfg.max_upload_bytes + MULTIPART_SLACK)
    return app


__all__ = ["ServeConfig", "create_app", "build_app", "run", "DEFAULT_HOST", "DEFAULT_PORT"]
