"""Cheap checks first: a mistyped path or folder is answered before TensorFlow (or pandas, OpenCV) loads.

Timing-free: each case runs the CLI in a fresh interpreter and asserts on the message, the exit
status and which heavy modules ended up imported; a check that came after ``import tensorflow``
would fail here however fast the machine is. (numpy and OpenCV may load: the parser's choices come
from the pipeline module, ≈0.2 s.)
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from boneage import preflight
from boneage.data import DataError, read_labels
from boneage.paths import SAMPLES_DIR

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("tensorflow", "keras", "pandas")
SAMPLE = SAMPLES_DIR / "2110.png"

PROBE = """
import json, sys
from boneage.cli import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "heavy": sorted(m for m in %r if m in sys.modules)}))
""" % (HEAVY,)


def run_cli(*args: str) -> tuple[int, list[str], str]:
    """Exit status, heavy modules imported, stderr."""
    p = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    return out["rc"], out["heavy"], p.stderr


@pytest.mark.parametrize("args, message", [
    (("predict", "typo.png", "--sex", "F"), "typo.png: file not found"),
    (("predict", "boneage/ui", "--sex", "F"), "no image files found in boneage/ui"),  # folders are walked
    (("predict", str(SAMPLE), "--sex", "F", "--model", "no/such/model"), "no/such/model: model not found"),
    (("pipeline", "typo.png", "--out", "stages"), "typo.png: file not found"),
    (("evaluate", "--data", "no/such/folder", "--out", "x.csv"), "no/such/folder: folder not found"),
    (("evaluate", "--data", "boneage", "--out", "x.csv"), "boneage: no labels.csv"),
    (("evaluate", "--data", str(SAMPLES_DIR), "--out", "boneage"), "boneage: is a folder; give a file name"),
    (("train", "--data", "no/such/folder", "--out", "runs/x"), "no/such/folder: folder not found"),
    (("train", "--data", str(SAMPLES_DIR), "--out", "README.md"), "README.md: is a file; give a folder"),
    (("train", "--data", str(SAMPLES_DIR), "--out", "runs/x", "--init-from", "no/such/run"), "no/such/run: not found"),
])
def test_bad_path_answered_before_heavy_imports(args, message):
    rc, heavy, err = run_cli(*args)
    assert rc == 2
    assert err.startswith("boneage: error: ") and len(err.strip().splitlines()) == 1
    assert message in err and "Traceback" not in err
    assert heavy == [], f"imported before the path check: {heavy}"


def test_predict_names_every_missing_file_and_loads_nothing():
    rc, heavy, err = run_cli("predict", "a.png", "b.png", "--sex", "M")
    assert rc == 2 and heavy == []
    assert err.splitlines() == ["boneage: error: a.png: file not found", "boneage: error: b.png: file not found"]


def test_good_paths_pass_preflight(tmp_path):
    assert preflight.existing_file(SAMPLE) == SAMPLE
    assert preflight.labels_file(SAMPLES_DIR) == SAMPLES_DIR / "labels.csv"
    (tmp_path / "mine.csv").write_text("id,boneage_months,male\n")
    assert preflight.labels_file(tmp_path) == tmp_path / "mine.csv"  # the only CSV in the folder
    assert preflight.output_folder(tmp_path / "new") == tmp_path / "new"


def test_read_labels_says_folder_not_found():
    with pytest.raises(DataError, match="folder not found"):
        read_labels("no/such/folder")


def test_readme_example_outputs_are_ignored_by_git():
    """Running the README's examples leaves nothing untracked: every ``--out`` they name is git-ignored."""
    import re
    import shutil

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    outs = re.findall(r"^boneage \w[\w-]* .*?--out (\S+)", (REPO / "README.md").read_text(), flags=re.M)
    outs += re.findall(r"`boneage \w[\w-]* [^`]*?--out (\S+?)`", (REPO / "README.md").read_text())
    outs = sorted({o for o in outs if o.isascii() and not o.isupper()})  # RUN_DIR-style placeholders aside
    assert outs, "no example outputs found in the README"
    p = subprocess.run(["git", "check-ignore", "--no-index", *outs], cwd=REPO, capture_output=True, text=True)
    assert sorted(p.stdout.split()) == outs, f"not ignored: {sorted(set(outs) - set(p.stdout.split()))}"
