"""Shared fixtures: the committed sample radiographs and the (optional) shared data folder.

Keep this small; test-specific helpers belong in the test modules.
"""
from __future__ import annotations

import io
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

from boneage.paths import FIXTURES_DIR, MODELS_DIR, shared_data_dir

def free_port() -> int:
    """A local TCP port nobody listens on now (for a server started by a test or a bench script)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def streamlit_command(port: int) -> list[str]:
    """The app's server as the README starts it (``streamlit run app.py``), headless on 127.0.0.1:``port``."""
    return [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
            "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]


HIRES_PATHS = sorted((FIXTURES_DIR / "hires").glob("*.png"))  # 8 segmented left hands, ~800×1040
THUMB_PATHS = sorted((FIXTURES_DIR / "thumbs").glob("*.png"))  # 64 raw 100×100 thumbnails


@pytest.fixture(scope="session")
def hires_paths() -> list[Path]:
    assert HIRES_PATHS, f"no fixtures in {FIXTURES_DIR / 'hires'}"
    return HIRES_PATHS


@pytest.fixture(scope="session")
def thumb_paths() -> list[Path]:
    assert THUMB_PATHS, f"no fixtures in {FIXTURES_DIR / 'thumbs'}"
    return THUMB_PATHS


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The RSNA data folder (``../shared/data/rsna-bone-age`` or $BONEAGE_DATA); skips when absent."""
    d = shared_data_dir()
    if not d.is_dir():
        pytest.skip(f"shared data not present ({d}); runs in CI where ../shared exists")
    return d


def dicom_from(path: Path, **attrs) -> bytes:
    """A DX DICOM (12-bit MONOCHROME2) of the image at ``path``, with extra tags (PatientSex=..., ...)."""
    from PIL import Image
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    px = (np.asarray(Image.open(path).convert("L")).astype(np.uint16) * 16)  # 12-bit
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = px.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = px.tobytes()
    for k, v in attrs.items():
        setattr(ds, k, v)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def predictor():
    """The shipped model, loaded once per test module (skips when the bundle is absent)."""
    from boneage.predict import Predictor

    if not (MODELS_DIR / "model.keras").is_file():
        pytest.skip("no shipped model")
    return Predictor.load(MODELS_DIR)
