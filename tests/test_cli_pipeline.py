"""``boneage pipeline IMAGE --out DIR`` as users run it: a subprocess, real files, real stderr."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from boneage.paths import FIXTURES_DIR
from boneage.pipeline import STAGES

HIRES = sorted((FIXTURES_DIR / "hires").glob("*.png"))
THUMBS = sorted((FIXTURES_DIR / "thumbs").glob("*.png"))
REQUIRED_KEYS = {"rotation_deg", "laterality", "inverted", "rois", "warnings"}
TF_NOISE = ("absl", "oneDNN", "I0000", "W0000", "E0000", "tensorflow", "cuda", "TF_ENABLE_ONEDNN_OPTS", "Traceback")


def boneage_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "boneage"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("boneage")
    return [found] if found else [sys.executable, "-m", "boneage.cli"]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "BONEAGE_DEBUG")}
    return subprocess.run([*boneage_cmd(), "pipeline", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=120)


def assert_no_tf_noise(stderr: str):
    hits = [w for w in TF_NOISE if w.lower() in stderr.lower()]
    assert not hits, f"TensorFlow/trace output reached stderr ({hits}):\n{stderr}"


@pytest.mark.parametrize("image", [HIRES[0], THUMBS[0]], ids=["hires", "thumb"])
def test_pipeline_writes_every_stage_and_json(image, tmp_path):
    out = tmp_path / "out"
    r = run_cli(str(image), "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr
    assert_no_tf_noise(r.stdout)
    expected = [f"{i:02d}_{name}.png" for i, name in enumerate(STAGES)]
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == expected
    for name in expected:
        im = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)
        assert im is not None and im.size > 0, name
    assert cv2.imread(str(out / "12_model_input.png"), cv2.IMREAD_UNCHANGED).shape == (160, 128)
    assert cv2.imread(str(out / "11_rois.png"), cv2.IMREAD_UNCHANGED).ndim == 3  # boxes in colour

    summary = json.loads((out / "stages.json").read_text())
    assert REQUIRED_KEYS <= set(summary)
    assert isinstance(summary["rotation_deg"], (int, float))
    assert summary["laterality"] in ("left", "right", "unknown")
    assert isinstance(summary["inverted"], bool) and isinstance(summary["warnings"], list)
    assert summary["stages"] == list(STAGES)
    if summary["hand_found"]:
        assert set(summary["rois"]) == {"middle_finger", "thumb", "carpals", "wrist"}
        assert all(len(b) == 4 for b in summary["rois"].values())
    assert "rotation" in r.stdout


def test_pipeline_options_reach_the_stages(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_cli(str(HIRES[1]), "--out", str(a), cwd=tmp_path).returncode == 0
    r = run_cli(str(HIRES[1]), "--out", str(b), "--clahe-clip", "3", "--clahe-tiles", "6", "--denoise", "none",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    sa, sb = (json.loads((d / "stages.json").read_text()) for d in (a, b))
    assert (sb["params"]["clahe_clip"], sb["params"]["clahe_tiles"], sb["params"]["denoise"]) == (3.0, 6, "none")
    ca = cv2.imread(str(a / "05_clahe.png"), cv2.IMREAD_GRAYSCALE)
    cb = cv2.imread(str(b / "05_clahe.png"), cv2.IMREAD_GRAYSCALE)
    assert not np.array_equal(ca, cb)
    assert sa["params"]["clahe_clip"] == 1.0


def test_pipeline_inverted_input_reported(tmp_path):
    img = cv2.imread(str(THUMBS[2]), cv2.IMREAD_GRAYSCALE)
    src = tmp_path / "inverted.png"
    cv2.imwrite(str(src), 255 - img)
    r = run_cli(str(src), "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "o" / "stages.json").read_text())
    assert s["inverted"] is True and any("inverted" in w for w in s["warnings"])


def _bad_inputs(tmp: Path) -> dict[str, Path]:
    text = tmp / "notes.txt"
    text.write_text("not an image\n")
    empty = tmp / "empty.png"
    empty.write_bytes(b"")
    fake = tmp / "fake.png"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)  # PNG signature, nothing valid after it
    return {"text": text, "empty": empty, "missing": tmp / "missing.png", "truncated-png": fake, "folder": tmp}


@pytest.mark.parametrize("kind", ["text", "empty", "missing", "truncated-png", "folder"])
def test_pipeline_bad_input_one_line_exit_2(kind, tmp_path):
    src = _bad_inputs(tmp_path)[kind]
    out = tmp_path / "out"
    r = run_cli(str(src), "--out", str(out), cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("boneage: error:"), lines[0]
    assert "Traceback" not in r.stderr
    assert_no_tf_noise(r.stderr)
    assert not (out / "stages.json").exists()


def test_defaults_are_the_models_own_settings(tmp_path):
    """No option given: the model's pipeline settings from its bundle; an option overrides one of them."""
    from boneage import bundle
    from boneage.cli import main
    from boneage.pipeline import PipelineParams, STAGE_NOTES

    model = tmp_path / "model"
    bundle.write_meta(model, bundle.BundleMeta(model_version="m", pipeline=PipelineParams(clahe_clip=2.5, threshold="otsu")))
    (model / bundle.MODEL_FILE).write_bytes(b"")
    assert main(["pipeline", str(HIRES[0]), "--out", str(tmp_path / "a"), "--model", str(model)]) == 0
    got = json.loads((tmp_path / "a" / "stages.json").read_text())
    assert (got["params"]["clahe_clip"], got["params"]["threshold"]) == (2.5, "otsu")
    assert main(["pipeline", str(HIRES[0]), "--out", str(tmp_path / "b"), "--model", str(model), "--clahe-clip", "1.5"]) == 0
    got = json.loads((tmp_path / "b" / "stages.json").read_text())
    assert (got["params"]["clahe_clip"], got["params"]["threshold"]) == (1.5, "otsu")
    assert [s["note"] for s in got["stage_files"]] == [STAGE_NOTES[s["stage"]] for s in got["stage_files"]]
