"""REST service (``boneage serve``): endpoints, JSON errors, upload limit, concurrency, admission."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from boneage.serve import ServeConfig, build_app  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
HIRES = sorted((REPO / "tests" / "fixtures" / "hires").glob("*.png"))
THUMBS = sorted((REPO / "tests" / "fixtures" / "thumbs").glob("*.png"))


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(build_app(predictor, ServeConfig(workers=2, tta=2))) as c:
        yield c


def _post(client, path: Path | None = None, data: bytes | None = None, name: str = "x.png", **fields):
    body = data if data is not None else path.read_bytes()
    return client.post("/v1/predict", files={"file": (name, body, "application/octet-stream")},
                       data={k: str(v) for k, v in fields.items()})


def test_health_and_docs(client, predictor):
    r = client.get("/health")
    assert r.status_code == 200
    h = r.json()
    assert h["status"] == "ok" and h["model_version"] == predictor.model_version
    # boneage.runtime's fast path, not its fallback (the member on its int8 graph where the bundle holds one)
    assert h["runtime"] == predictor.runtime and set(predictor.runtime.split("; ")) <= {"litert", "litert-int8"}
    assert h["limits"]["workers"] == 2 and h["in_flight"] == 0
    spec = client.get("/openapi.json").json()
    assert "/v1/predict" in spec["paths"] and "/health" in spec["paths"]
    form = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in form
    assert client.get("/docs").status_code == 200


def test_predict_answers_the_cli_json(client, predictor):
    p = HIRES[0]
    r = _post(client, p, name=p.name, sex="F", age_months=120)
    assert r.status_code == 200, r.text
    got = r.json()
    want = predictor.predict(p.read_bytes(), sex="F", tta=2, chronological_age_months=120, name=p.name).to_dict()
    assert got["file"] == p.name
    assert {k: v for k, v in got.items() if k != "file"} == want
    assert got["chronological_age_months"] == 120  # the clinical fields reached the interpretation


@pytest.mark.parametrize(
    "kwargs, status, needle",
    [
        (dict(data=b"", sex="F"), 422, "empty"),
        (dict(data=b"hello, this is text\n" * 20, sex="F"), 422, "text file"),
        (dict(data=b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, sex="F"), 422, "x.png"),
        (dict(path=THUMBS[0]), 422, "sex is required"),
        (dict(path=THUMBS[0], sex="X"), 422, "sex"),
        (dict(path=THUMBS[0], sex="F", birth_date="2020-13-45"), 422, "birth_date"),
        (dict(path=THUMBS[0], sex="F", age_months="ten"), 422, "age_months"),
        (dict(path=THUMBS[0], sex="F", age_months=-5), 422, "age"),
        (dict(path=THUMBS[0], sex="F", father_height_cm=-170, mother_height_cm=160), 422,
         "father's height must be positive"),
        (dict(path=THUMBS[0], sex="F", father_height_cm=175, mother_height_cm=300), 422,
         "mother's height 300 cm is not plausible"),
        (dict(path=THUMBS[0], sex="F", father_height_cm=175), 422, "mother's height missing"),
    ],
)
def test_bad_input_is_a_one_line_json_4xx(client, kwargs, status, needle):
    r = _post(client, **kwargs)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert needle in err and "\n" not in err and "Traceback" not in err


def test_missing_file_field(client):
    r = client.post("/v1/predict", data={"sex": "F"})
    assert r.status_code == 422
    assert r.json()["error"].startswith("file:")


def test_upload_limit_before_reading(predictor):
    with TestClient(build_app(predictor, ServeConfig(max_upload_bytes=20_000, workers=1))) as c:
        big = HIRES[0].read_bytes()
        assert len(big) > 20_000 + 64 * 1024 + 10_000
        r = _post(c, data=big, sex="F")
        assert r.status_code == 413 and "limit" in r.json()["error"]
        # Chunked body (no Content-Length): counted as it arrives and cut at the limit.
        boundary = "b0undary"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n"
                f"Content-Type: image/png\r\n\r\n").encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        def chunks():
            yield head
            for i in range(0, len(big), 16_384):
                yield big[i:i + 16_384]
            yield tail

        r = c.post("/v1/predict", content=chunks(), headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        assert r.status_code == 413 and "limit" in r.json()["error"]
        # A small upload still goes through on the same app.
        assert _post(c, THUMBS[0], sex="M").status_code == 200


def test_concurrent_clients_get_the_sequential_answers(client, predictor):
    files = (HIRES[:3] + THUMBS[:3])
    want = {p.name: predictor.predict(p.read_bytes(), sex="M", tta=2).bone_age_months for p in files}
    with ThreadPoolExecutor(6) as ex:
        rs = list(ex.map(lambda p: _post(client, p, name=p.name, sex="M"), files * 2))
    assert all(r.status_code == 200 for r in rs), [r.text for r in rs if r.status_code != 200]
    for r in rs:
        j = r.json()
        assert j["bone_age_months"] == round(want[j["file"]], 1)
    assert client.get("/health").json()["in_flight"] == 0


class _SlowPredictor:
    """Stands in for the model so admission control can be tested deterministically."""

    model_version = "slow-test"
    runtime = "none (a test double)"

    def __init__(self):
        self.release = threading.Event()

    def predict(self, data, **kw):
        self.release.wait(30)
        raise RuntimeError("boom\nsecond line")


def test_admission_limit_answers_503_then_recovers():
    slow = _SlowPredictor()
    with TestClient(build_app(slow, ServeConfig(workers=1, queue=1)), raise_server_exceptions=False) as c:
        with ThreadPoolExecutor(2) as ex:
            futs = [ex.submit(_post, c, THUMBS[0], sex="F") for _ in range(2)]
            for _ in range(200):
                if c.get("/health").json()["in_flight"] == 2:
                    break
                time.sleep(0.02)
            r = _post(c, THUMBS[0], sex="F")
            assert r.status_code == 503 and "busy" in r.json()["error"]
            slow.release.set()
            done = [f.result() for f in futs]
        # An unexpected failure is a one-line JSON 500, never a traceback.
        for d in done:
            assert d.status_code == 500
            assert d.json()["error"] == "unexpected RuntimeError: boom"
        assert c.get("/health").json()["in_flight"] == 0


def test_parents_heights_give_the_target_height(client):
    r = _post(client, HIRES[0], name=HIRES[0].name, sex="F", age_months=130, height_cm=145,
              father_height_cm=180, mother_height_cm=165)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["target_height_cm"] == 166.0 and d["target_height_range_cm"] == [157.5, 174.5]
    assert d["target_comparison"] and d["percentile_text"]
