"""Hostile-but-small inputs (issue #14): bounded memory and time, one-line refusals, no reach
outside data folders, validated parameters.

Files are generated in tmp at test time (boneage.hostile). Memory is measured in a child process
(``ru_maxrss`` after imports vs after the load), so each check is independent of what pytest
already holds. No test asserts a wall-clock time (that is bench/hostile.py's job): the checks
are functional (refused from the header, page walk capped) and each child has a timeout.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from boneage import hostile
from boneage.io import (
    MAX_BYTES,
    MAX_TIFF_PAGES,
    ImageError,
    load_array,
    load_image,
    reduction_factor,
)
from boneage.paths import REPO_ROOT

CHILD_TIMEOUT_S = 120  # a guard against hangs, not a speed target


def _child_load(path: Path) -> dict:
    """Load ``path`` in a fresh interpreter: result and peak RSS growth (MB) of the load itself."""
    r = subprocess.run([sys.executable, "-c", hostile.PEAK_PROBE, str(path)], capture_output=True, text=True,
                       timeout=CHILD_TIMEOUT_S, cwd=REPO_ROOT, env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr.strip() == "", r.stderr[-2000:]  # nothing on stderr: no library warnings, no trace
    return json.loads(r.stdout.strip().splitlines()[-1])


def _one_line(msg: str) -> None:
    assert "\n" not in msg and "Traceback" not in msg and len(msg) < 400, msg


# ---------------------------------------------------------------------------------- memory / time


def test_huge_16bit_rgba_png_refused_from_its_header(tmp_path):
    # 7700² 16-bit RGBA: 474 MB of samples (4.5–5.2 GB and 20 s before #14). The data is a stub,
    # so a decode attempt would fail with another message: the header check must come first.
    p = hostile.png_header_only(tmp_path / "big.png", 7700, 16)
    with pytest.raises(ImageError, match=r"MB decoded\); the limit is") as e:
        load_image(p)
    _one_line(str(e.value))


def test_large_rgba_png_is_reduced_in_bounded_memory(tmp_path):
    # 3400² 8-bit RGBA: 46 MB decoded. Before #14 the float64 H×W×4 copy alone was 370 MB.
    p = hostile.png_rgba(tmp_path / "rgba.png", 3400, 8)
    assert reduction_factor(3400, 3400) == 2
    out = _child_load(p)
    assert out["ok"] and out["k"] == 2 and out["shape"] == [1700, 1700] and out["dtype"] == "float32"
    assert out["peak_mb"] < 200, out  # PIL's 46 MB decode + strips + the 1700² result


def test_reduced_load_matches_a_full_resolution_box_filter(tmp_path):
    import cv2

    rng = np.random.default_rng(3)
    base = cv2.resize(rng.random((40, 34)).astype(np.float32), (1700, 2000), interpolation=cv2.INTER_LINEAR)
    img = (np.clip(base, 0, 1) * 65535).astype(np.uint16)
    big = cv2.resize(img, (3400, 4000), interpolation=cv2.INTER_NEAREST)  # k = 2 by the pixel budget
    p = tmp_path / "big16.png"
    cv2.imwrite(str(p), big)
    loaded = load_image(p)
    assert loaded.meta.reduced_by == 2 and (loaded.meta.width, loaded.meta.height) == (3400, 4000)
    ref = cv2.resize(big.astype(np.float64), (1700, 2000), interpolation=cv2.INTER_AREA)
    ref = (ref - ref.min()) / (ref.max() - ref.min())
    assert np.abs(loaded.pixels - ref).max() < 1e-4


def test_small_images_load_bit_for_bit_as_before(hires_paths):
    # k = 1 for everything up to twice the pipeline frame: the RSNA images keep their exact pixels,
    # so the model's figures cannot move. Reference: whole-image float64 min-max of the samples.
    import cv2

    for p in hires_paths[:3]:
        raw = cv2.imread(str(p), cv2.IMREAD_UNCHANGED).astype(np.float64)
        ref = ((raw - raw.min()) / (raw.max() - raw.min())).astype(np.float32)
        got = load_image(p)
        assert got.meta.reduced_by == 1
        np.testing.assert_array_equal(got.pixels, ref)


def test_big_jpeg_is_decoded_at_reduced_size(tmp_path):
    p = hostile.jpeg_big(tmp_path / "big.jpg", 4800)
    out = _child_load(p)
    assert out["ok"] and out["k"] >= 2 and max(out["shape"]) <= 2400
    # a full 4800² float64 copy alone would be 184 MB; this holds the 2400² float64 working image
    assert out["peak_mb"] < 150, out


def test_tiff_page_chain_is_walked_cheaply(tmp_path):
    # 50,000 one-pixel pages took PIL's page count 15–20 s; the loader stops after MAX_TIFF_PAGES.
    p = hostile.tiff_pages(tmp_path / "pages.tif", 50_000)
    out = _child_load(p)
    assert out["ok"] and out["shape"] == [256, 256]
    assert f"more than {MAX_TIFF_PAGES} images" in " ".join(out["warnings"])


def test_tiff_page_count_small_and_looping(tmp_path):
    from boneage.io import _tiff_page_count

    p = hostile.tiff_pages(tmp_path / "three.tif", 3)
    assert _tiff_page_count(p.read_bytes()) == 3
    data = bytearray(p.read_bytes())
    first = int.from_bytes(data[4:8], "little")
    data[-4:] = first.to_bytes(4, "little")  # last IFD points back at the first: a loop
    assert _tiff_page_count(bytes(data)) == 3


def test_jpeg2000_dicom_whose_codestream_is_larger_than_its_header(tmp_path):
    p = hostile.dicom_j2k_lie(tmp_path / "lie.dcm")
    out = _child_load(p)
    assert not out["ok"] and "12000x12000" in out["error"] and "not decoded" in out["error"], out
    assert out["peak_mb"] < 50, out  # 0.92 GB before #14
    _one_line(out["error"])


def test_jpeg_dicom_size_mismatch_refused(tmp_path):
    import cv2
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    ok, jpg = cv2.imencode(".jpg", np.full((300, 200), 128, np.uint8))
    assert ok
    data = hostile._dicom(100, 80, encapsulate([jpg.tobytes()]), JPEGBaseline8Bit, encapsulated=True)
    with pytest.raises(ImageError, match="says 80x100 but its compressed image is 200x300"):
        load_image(data)


def test_decodes_are_bounded_across_threads(monkeypatch, hires_paths):
    import boneage.io as bio

    slots = threading.BoundedSemaphore(2)
    monkeypatch.setattr(bio, "_SLOTS", slots)
    active, peak, lock = [0], [0], threading.Lock()
    real = bio._load_raster

    def slow(*a, **k):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        try:
            return real(*a, **k)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(bio, "_load_raster", slow)
    errors = []

    def work():
        try:
            load_image(hires_paths[0])
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and peak[0] == 2


def test_decode_slot_times_out_with_one_line(monkeypatch):
    import boneage.io as bio

    sem = threading.BoundedSemaphore(1)
    sem.acquire()
    monkeypatch.setattr(bio, "_SLOTS", sem)
    monkeypatch.setattr(bio, "DECODE_WAIT_S", 0.05)
    with pytest.raises(ImageError, match="busy decoding other images"):
        load_array(np.random.default_rng(0).random((80, 80)))


def test_upload_limit_matches_the_loader():
    import tomllib

    cfg = tomllib.loads((REPO_ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["maxUploadSize"] * 10**6 == MAX_BYTES  # the browser counts MB as 10⁶ bytes


# ---------------------------------------------------------------------------------- arrays (API)


@pytest.mark.parametrize(
    "arr, words",
    [
        (np.full((100, 100), np.nan), "NaN or infinite"),
        (np.full((100, 100), np.inf), "NaN or infinite"),
        (np.zeros((100, 100)), "blank"),
        (np.zeros((1, 1)), "at least 64"),
        (np.zeros((0, 0)), "at least 64"),
        (np.zeros(100), "not an image"),
        (np.zeros((100, 100, 7)), "not an image"),
        (np.empty((100, 100), dtype=object), "not a real number"),
        (np.zeros((100, 100), complex), "not a real number"),
        ("not an array", "not a real number"),
        ([[1, 2], [3]], "not an image array"),
    ],
    ids=["nan", "inf", "zeros", "1x1", "0x0", "1d", "7ch", "object", "complex", "str", "ragged"],
)
def test_bad_arrays_refused_like_files(arr, words):
    with pytest.raises(ImageError, match=words) as e:
        load_array(arr)
    _one_line(str(e.value))


def test_array_equals_file_load(hires_paths):
    import cv2

    raw = cv2.imread(str(hires_paths[0]), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(load_array(raw).pixels, load_image(hires_paths[0]).pixels)


@pytest.mark.parametrize("arr", [np.zeros((1, 1)), np.zeros(50), np.empty((9, 9), object), np.full((9, 9), np.nan)])
def test_run_pipeline_refuses_non_images_with_image_error(arr):
    from boneage.pipeline import run_pipeline

    with pytest.raises(ImageError):
        run_pipeline(arr)


# ---------------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"clahe_tiles": 0}, "clahe_tiles (--clahe-tiles) must be a whole number from 1 to 64"),
        ({"clahe_tiles": 2.5}, "whole number"),
        ({"clahe_clip": -5}, "clahe_clip (--clahe-clip) must be a finite number > 0"),
        ({"clahe_clip": float("nan")}, "finite"),
        ({"denoise": "blur"}, "must be one of median, gaussian, none"),
        ({"threshold": 3}, "must be one of mean, otsu"),
        ({"model_width": 0}, "model_width"),
        ({"ignore_bottom": 1.5}, "ignore_bottom"),
        ({"align": "yes"}, "true or false"),
    ],
)
def test_pipeline_params_validated(kw, words):
    from boneage.checks import ParameterError
    from boneage.pipeline import PipelineParams

    with pytest.raises(ParameterError) as e:
        PipelineParams(**kw)
    assert words in str(e.value)
    _one_line(str(e.value))


def test_params_coerce_accepts_dict_refuses_other():
    from boneage.checks import ParameterError
    from boneage.pipeline import PipelineParams, run_pipeline

    img = np.random.default_rng(1).random((120, 100))
    assert run_pipeline(img, {"clahe_clip": 2.0}).params.clahe_clip == 2.0
    with pytest.raises(ParameterError, match="params must be PipelineParams or a dict"):
        run_pipeline(img, ["clahe_clip", 2])
    assert PipelineParams(clahe_tiles=np.int64(4)).clahe_tiles == 4


# ---------------------------------------------------------------------------------- data folders


def _labels(tmp_path: Path, rows: list[str]) -> Path:
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    (d / "labels.csv").write_text("id,boneage_months,male\n" + "".join(r + "\n" for r in rows))
    return d


@pytest.mark.parametrize("bad_id", ["/etc/passwd", "../../etc/passwd", "..", "a/b", "a\\b", "C:x", "x\x00y"])
def test_ids_must_be_plain_names(tmp_path, bad_id):
    from boneage.data import DataError, find_image, read_labels

    with pytest.raises(DataError) as e1:
        find_image(tmp_path, bad_id)
    with pytest.raises(DataError) as e2:
        find_image(tmp_path, "../" + bad_id.strip("/."))
    # the same wording whatever the target, so existence outside the folder is not revealed
    assert str(e1.value).split("'")[-1] == str(e2.value).split("'")[-1]
    d = _labels(tmp_path, [f'"{bad_id}",120,1'])
    with pytest.raises(DataError, match="not a plain image name"):
        read_labels(d)


def test_absolute_id_does_not_reach_an_existing_file(tmp_path, hires_paths):
    from boneage.data import DataError, find_image

    with pytest.raises(DataError):
        find_image(tmp_path, str(hires_paths[0].with_suffix("")))  # exists, outside tmp_path


@pytest.mark.parametrize("rows, words", [([], "no rows"), (["a,-3,1"], "outside 0–240 months"),
                                         (["a,1000000000,0"], "outside 0–240 months"), (["a,nan,0"], "unreadable")])
def test_labels_validated(tmp_path, rows, words):
    from boneage.data import DataError, read_labels

    with pytest.raises(DataError, match=words):
        read_labels(_labels(tmp_path, rows))


# ---------------------------------------------------------------------------------- CLI one-liners


def _cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "boneage.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO_ROOT, env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize(
    "args, words",
    [
        (["pipeline", "x.png", "--out", "o", "--clahe-tiles", "0"], "--clahe-tiles"),
        (["pipeline", "x.png", "--out", "o", "--clahe-clip", "-5"], "--clahe-clip"),
        (["predict", "x.png", "--tta", "0"], "--tta"),
        (["predict", "x.png", "--tta", "1.5"], "--tta"),
        (["predict", "x.png", "--tta", "16"], "--tta"),  # 8 fixed transforms: 16 used to read as 8, silently
        (["predict", "x.png", "--frobnicate"], "--frobnicate (see boneage --help)"),
        (["train", "--data", "d", "--out", "o", "--age-range", "young"], "--age-range"),
        (["nonsense"], "see boneage --help"),
    ],
)
def test_cli_mistakes_are_one_line(args, words):
    r = _cli(*args)
    assert r.returncode == 2 and r.stdout == ""
    err = r.stderr.strip()
    _one_line(err)
    assert words in err and "usage:" not in err


@pytest.mark.parametrize(
    "kw, flag",
    [({"learning_rate": float("nan")}, "--lr"), ({"learning_rate": -1e-3}, "--lr"), ({"epochs": 0}, "--epochs"),
     ({"epochs": -1}, "--epochs"), ({"batch_size": 0}, "--batch-size"), ({"val_fraction": 1.0}, "--val-fraction"),
     ({"ema_momentum": 1.0}, "--ema"), ({"backbone": "resnet"}, "--backbone"), ({"limit": 0}, "--limit"),
     ({"image_height": 8}, "--image-size"), ({"pipeline": {"clahe_tiles": 0}}, "--clahe-tiles"),
     ({"age_range": (96, 0)}, "--age-range"), ({"age_range": (0, float("nan"))}, "--age-range"),
     ({"age_range": (-5, 60)}, "--age-range"), ({"teacher_weight": 1.5}, "--teacher-weight"),
     ({"teacher_weight": float("nan")}, "--teacher-weight"), ({"teacher": 3}, "teacher must be a path")],
)
def test_train_config_validated_up_front(kw, flag):
    from boneage.checks import ParameterError
    from boneage.train import TrainConfig

    with pytest.raises(ParameterError) as e:
        TrainConfig(data="d", out="o", **kw)
    assert flag in str(e.value)
    _one_line(str(e.value))


def test_cli_train_lr_nan_refused_before_any_work(tmp_path, thumb_paths):
    out = tmp_path / "run"
    r = _cli("train", "--data", str(thumb_paths[0].parent), "--out", str(out), "--lr", "nan", timeout=300)
    assert r.returncode == 2, r.stderr
    _one_line(r.stderr.strip())
    assert "learning_rate (--lr) must be a finite number > 0.0" in r.stderr
    assert not (out / "model.keras").exists()


def test_dataset_page_reads_only_inside_data_roots(tmp_path, monkeypatch, hires_paths):
    from boneage.ui.dataset_page import confined_folder, find_case_image

    fixtures = hires_paths[0].parent
    monkeypatch.delenv("BONEAGE_DATA_ROOTS", raising=False)
    assert find_case_image(fixtures, hires_paths[0].stem) == hires_paths[0]  # the fixtures are a data root
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "7.png").write_bytes(hires_paths[0].read_bytes())
    assert confined_folder(outside) is None and find_case_image(outside, "7") is None
    assert confined_folder(tmp_path / "does-not-exist") is None  # same answer, nothing opened
    # ids that leave the folder: same answer as a missing image
    for bad in (str(hires_paths[0].with_suffix("")), "../hires/" + hires_paths[0].stem, "/etc/passwd", "no-such-id"):
        assert find_case_image(fixtures, bad) is None
    assert confined_folder(str(fixtures) + "/../../../..") is None  # '..' resolved before the check
    monkeypatch.setenv("BONEAGE_DATA_ROOTS", str(outside))
    assert find_case_image(outside, "7") == outside.resolve() / "7.png"


def test_pydicom_warnings_stay_off_stderr(tmp_path):
    from pydicom.uid import ExplicitVRLittleEndian

    img = np.zeros((80, 80), np.uint16)
    img[20:60, 25:55] = 900
    data = hostile._dicom(80, 80, img.tobytes(), ExplicitVRLittleEndian, encapsulated=False)
    p = tmp_path / "odd.dcm"
    # a letter in the transfer syntax UID: pydicom warns "Invalid value for VR UI" (a multi-line
    # UserWarning on stderr before #14), then the file cannot be decoded
    p.write_bytes(data.replace(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2.x\x00"))
    out = _child_load(p)  # asserts that stderr is empty
    assert not out["ok"]
    _one_line(out["error"])


def test_pydicom_remarks_are_collected_as_warnings():
    import logging

    from boneage.io import _library_notes, _summarise_notes

    with _library_notes() as notes:
        for i in range(5):
            logging.getLogger("pydicom").warning("remark %d\nsecond line", i)
    got = _summarise_notes(notes)
    assert got[:3] == [f"DICOM reader: remark {i} second line" for i in range(3)]
    assert got[3] == "DICOM reader: 2 more remarks"


@pytest.mark.parametrize("kw, words", [({"workers": 0}, "workers (--workers)"), ({"queue": -1}, "queue (--queue)"),
                                       ({"tta": 0}, "tta (--tta)"), ({"max_upload_bytes": MAX_BYTES + 1}, "max_upload_bytes")])
def test_serve_config_validated(kw, words):
    from boneage.checks import ParameterError
    from boneage.serve import ServeConfig

    with pytest.raises(ParameterError, match=words.replace("(", r"\(").replace(")", r"\)")):
        ServeConfig(**kw)
    assert ServeConfig().max_upload_bytes == MAX_BYTES  # the service, the app and the loader agree
