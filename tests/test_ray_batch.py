"""Batch scoring on Ray Data: a local Ray with 2 workers (skips when ray is not installed)."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from boneage.paths import MODELS_DIR

ray = pytest.importorskip("ray")

REPO = Path(__file__).resolve().parent.parent
THUMBS = sorted((REPO / "tests" / "fixtures" / "thumbs").glob("*.png"))


@pytest.fixture(scope="module")
def local_ray():
    if not (MODELS_DIR / "model.keras").is_file():
        pytest.skip("no shipped model")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}})
    yield
    ray.shutdown()


def test_ray_scores_like_the_local_path_and_resumes(local_ray, tmp_path):
    from boneage.batch import expand_inputs
    from boneage.predict import Predictor
    from boneage.ray_batch import score_on_ray

    d = tmp_path / "films"
    d.mkdir()
    for p in THUMBS[:4]:
        shutil.copy(p, d / p.name)
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    files = expand_inputs([str(d)])
    out = tmp_path / "ray.csv"
    s = score_on_ray(files, out, sex="M", tta=2, actors=2, batch_size=2, progress=False)
    assert (s.predicted, s.failed) == (4, 1)
    with open(out, newline="") as f:
        rows = {r["file"]: r for r in csv.DictReader(f)}
    assert len(rows) == 5 and rows[str(d / "broken.png")]["error"]
    pred = Predictor.load()
    for p in files:
        if p.name == "broken.png":
            continue
        want = round(pred.predict(p, sex="M", tta=2).bone_age_months, 1)
        assert float(rows[str(p)]["bone_age_months"]) == pytest.approx(want, abs=0.11)
    again = score_on_ray(files, out, sex="M", tta=2, actors=2, progress=False)
    assert (again.skipped, again.predicted) == (5, 0)
