"""Where things live: the repo, the shipped model, the shared data (if present)."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "models"
FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures"
SAMPLES_DIR = REPO_ROOT / "samples"  # demo radiographs with labels.csv and a README (RSNA, cited there)
APP_ICON = REPO_ROOT / "assets" / "icon.png"  # the app's page icon (scripts/make_icon.py), beside streamlit_app.py


def shared_data_dir() -> Path:
    """RSNA data folder: $BONEAGE_DATA, else ../shared/data/rsna-bone-age beside the repo."""
    env = os.environ.get("BONEAGE_DATA")
    if env:
        return Path(env)
    return REPO_ROOT.parent / "shared" / "data" / "rsna-bone-age"


def cache_dir() -> Path:
    p = Path(os.environ.get("BONEAGE_CACHE", REPO_ROOT / ".cache"))
    p.mkdir(parents=True, exist_ok=True)
    return p
