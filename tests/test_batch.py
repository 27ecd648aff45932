"""Batch scoring (``boneage predict DIR --out CSV``): inputs, worker processes, batching, resume."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from boneage.batch import COLUMNS, BatchError, done_files, expand_inputs, score

REPO = Path(__file__).resolve().parent.parent
HIRES = sorted((REPO / "tests" / "fixtures" / "hires").glob("*.png"))
THUMBS = sorted((REPO / "tests" / "fixtures" / "thumbs").glob("*.png"))


@pytest.fixture()
def archive(tmp_path) -> Path:
    """A small nested archive: thumbnails, a full-size film, a broken file and noise to ignore."""
    root = tmp_path / "archive"
    (root / "2019" / "a").mkdir(parents=True)
    (root / "2020").mkdir()
    (root / ".trash").mkdir()
    for p in THUMBS[:3]:
        shutil.copy(p, root / "2019" / "a" / p.name)
    shutil.copy(HIRES[0], root / "2020" / "full.png")
    shutil.copy(THUMBS[3], root / "2020" / "NOEXT")  # DICOM-style name without extension
    (root / "2020" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    (root / "2020" / "notes.csv").write_text("a,b\n")
    shutil.copy(THUMBS[4], root / ".trash" / "old.png")
    shutil.copy(THUMBS[5], root / "2020" / ".hidden.png")
    return root


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_expand_inputs(archive, tmp_path):
    got = [p.relative_to(archive).as_posix() for p in expand_inputs([str(archive)])]
    assert got == ["2019/a/" + p.name for p in THUMBS[:3]] + ["2020/NOEXT", "2020/broken.png", "2020/full.png"]
    globbed = expand_inputs([str(archive / "**" / "*.png"), str(archive / "2020" / "full.png")])
    assert len(globbed) == 5  # de-duplicated; the hidden file and folder skipped
    assert expand_inputs([str(tmp_path / "missing.png")]) == [tmp_path / "missing.png"]
    assert expand_inputs([str(tmp_path / "nothing*" )]) == []


def test_score_matches_single_predictions_and_resumes(predictor, archive, tmp_path):
    files = expand_inputs([str(archive)])
    out = tmp_path / "res" / "results.csv"
    seen = []
    s = score(predictor, files, out, sex="F", tta=2, workers=2, batch_images=3, progress=False, on_row=seen.append)
    assert (s.total, s.skipped, s.predicted, s.failed) == (6, 0, 5, 1)
    rows = {r["file"]: r for r in _rows(out)}
    assert list(_rows(out)[0]) == list(COLUMNS) and len(rows) == 6 == len(seen)
    bad = rows[str(archive / "2020" / "broken.png")]
    assert bad["error"] and bad["bone_age_months"] == ""
    for f in files:
        if f.name == "broken.png":
            continue
        want = predictor.predict(f, sex="F", tta=2)
        r = rows[str(f)]
        assert r["error"] == ""
        assert float(r["bone_age_months"]) == pytest.approx(round(want.bone_age_months, 1), abs=0.11)
        assert r["sex"] == "F" and r["laterality"] == want.pipeline.laterality

    # Resume: nothing left to do; then one row removed is the only one redone.
    s2 = score(predictor, files, out, sex="F", tta=2, workers=2, progress=False)
    assert (s2.skipped, s2.predicted, s2.failed) == (6, 0, 0)
    kept = [r for r in _rows(out) if not r["file"].endswith("full.png")]
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(kept)
    s3 = score(predictor, files, out, sex="F", tta=2, workers=1, progress=False)
    assert (s3.skipped, s3.predicted) == (5, 1)
    assert len(_rows(out)) == 6 and done_files(out) == {str(f) for f in files}


def test_missing_sex_is_a_row_error_not_a_crash(predictor, archive, tmp_path):
    out = tmp_path / "r.csv"
    s = score(predictor, expand_inputs([str(archive / "2019")]), out, tta=1, workers=1, progress=False)
    assert s.failed == 3 and all("sex is required" in r["error"] for r in _rows(out))


def test_not_a_results_csv_is_refused(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("id,value\n1,2\n")
    with pytest.raises(BatchError, match="no 'file' column"):
        done_files(bad)


def test_cli_batch(archive, tmp_path, capsys):
    from boneage.cli import main

    out = tmp_path / "cli.csv"
    rc = main(["predict", str(archive / "2019"), "--sex", "M", "--tta", "1", "--out", str(out), "--quiet", "--workers", "1"])
    assert rc == 0
    assert "3 predicted, 0 failed" in capsys.readouterr().out
    assert main(["predict", str(tmp_path / "none*.png"), "--sex", "M", "--out", str(out)]) == 2
    assert "no image files found" in capsys.readouterr().err
