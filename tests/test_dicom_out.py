"""DICOM results (``--dicom-out``, API ``output=dicom``): written, read back and checked."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from test_io import dicom_bytes, make_dicom

pytest.importorskip("highdicom")

REPO = Path(__file__).resolve().parent.parent
HIRES = REPO / "tests" / "fixtures" / "hires" / "1437.png"
SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"


@pytest.fixture(scope="module")
def source():
    """A DX radiograph with patient and study identity, as a PACS would send it."""
    img = cv2.imread(str(HIRES), cv2.IMREAD_GRAYSCALE).astype(np.uint16) * 16
    ds = make_dicom(img, PatientID="P-0042", PatientName="Doe^Jane", AccessionNumber="ACC-7", PatientSex="F",
                    StudyInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid(), StudyDate="20240105",
                    PatientBirthDate="20130301", StudyID="S1", SeriesNumber=1)
    return ds, dicom_bytes(ds, enforce_file_format=True)


def _read_all(paths):
    out = {}
    for p in paths:
        ds = pydicom.dcmread(p)
        out[ds.SOPClassUID] = ds
    return out


def _check_in_source_study(ds, src):
    for tag in ("StudyInstanceUID", "PatientID", "PatientName", "AccessionNumber", "PatientBirthDate", "StudyID"):
        assert ds.get(tag) == src.get(tag), tag
    assert ds.SeriesInstanceUID != src.SeriesInstanceUID
    assert ds.SOPInstanceUID != src.SOPInstanceUID
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian


def test_dicom_input_results_join_the_source_study(predictor, source, tmp_path):
    from boneage.dicom_out import write_results

    src, data = source
    r = predictor.predict(data, tta=1)
    files = write_results(r, data, tmp_path)
    assert len(files) == 2 and all(f.is_file() for f in files)
    objs = _read_all(files)
    sc, doc = objs[SC_STORAGE], objs[PDF_STORAGE]
    for ds in (sc, doc):
        _check_in_source_study(ds, src)
    assert sc.SeriesInstanceUID != doc.SeriesInstanceUID  # each result in its own new series
    ref = sc.SourceImageSequence[0]
    assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (src.SOPClassUID, src.SOPInstanceUID)
    ref = doc.SourceInstanceSequence[0]
    assert ref.ReferencedSOPInstanceUID == src.SOPInstanceUID

    # Secondary Capture: RGB overlay with the result banner burned in.
    assert sc.Modality == "OT" and sc.BurnedInAnnotation == "YES" and sc.PhotometricInterpretation == "RGB"
    px = sc.pixel_array
    assert px.ndim == 3 and px.shape[2] == 3 and px.dtype == np.uint8
    canon = r.pipeline.stages["canonical"]
    banner = px.shape[0] - canon.shape[0]
    assert banner > 40 and px.shape[1] == r.overlay_rgb().shape[1]  # the overlay with its colour key (issue 10)
    top = px[:banner].astype(int)
    assert (top.max(axis=2) > 150).mean() > 0.01  # text drawn
    red = (top[..., 0] > 200) & (top[..., 1] < 140)
    assert red.sum() > 50  # the red "not for diagnosis" line
    assert list(sc.PatientOrientation) == (["L", "H"] if r.pipeline.laterality == "left" else ["R", "H"])
    import highdicom

    hd = highdicom.Image.from_dataset(sc, copy=True)  # the library reads back what it wrote
    assert hd.SOPInstanceUID == sc.SOPInstanceUID

    # Encapsulated PDF: the report itself, readable, with the bone age on it.
    assert doc.Modality == "DOC" and doc.MIMETypeOfEncapsulatedDocument == "application/pdf"
    pdf = bytes(doc.EncapsulatedDocument)[: doc.EncapsulatedDocumentLength]
    assert pdf.startswith(b"%PDF") and pdf.rstrip(b"\0").endswith(b"%%EOF") or b"%%EOF" in pdf[-64:]
    from pypdf import PdfReader

    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert f"{r.bone_age_months:.1f}" in text
    assert "Doe" in text  # patient label from the source
    assert "patient ID P-0042" in text and "accession ACC-7" in text


def test_non_dicom_input_gets_a_new_study(predictor, tmp_path):
    from boneage.dicom_out import write_results

    r = predictor.predict(HIRES, sex="F", tta=1)
    objs = _read_all(write_results(r, HIRES, tmp_path))
    sc, doc = objs[SC_STORAGE], objs[PDF_STORAGE]
    assert sc.StudyInstanceUID == doc.StudyInstanceUID  # one new study holds both
    assert pydicom.uid.UID(sc.StudyInstanceUID).is_valid
    for ds in (sc, doc):
        assert ds.PatientID == "" and "SourceImageSequence" not in ds and "SourceInstanceSequence" not in ds
    # A second run makes a different study (nothing to join).
    objs2 = _read_all(write_results(r, HIRES, tmp_path / "again"))
    assert objs2[SC_STORAGE].StudyInstanceUID != sc.StudyInstanceUID


def test_cli_dicom_out(source, tmp_path, capsys):
    from boneage.cli import main

    src, data = source
    f = tmp_path / "film.dcm"
    f.write_bytes(data)
    out = tmp_path / "dicom"
    assert main(["predict", str(f), "--json", "--tta", "1", "--dicom-out", str(out)]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(line["dicom_files"]) == 2
    for p in line["dicom_files"]:
        assert pydicom.dcmread(p).StudyInstanceUID == src.StudyInstanceUID


def test_api_output_dicom(predictor, source):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from boneage.serve import ServeConfig, build_app

    src, data = source
    with TestClient(build_app(predictor, ServeConfig(workers=1, tta=1))) as c:
        r = c.post("/v1/predict?output=dicom", files={"file": ("film.dcm", data, "application/dicom")})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/zip"
        z = zipfile.ZipFile(io.BytesIO(r.content))
        names = z.namelist()
        assert len(names) == 2
        classes = set()
        for n in names:
            ds = pydicom.dcmread(io.BytesIO(z.read(n)))
            assert ds.StudyInstanceUID == src.StudyInstanceUID and ds.AccessionNumber == "ACC-7"
            classes.add(ds.SOPClassUID)
        assert classes == {SC_STORAGE, PDF_STORAGE}
        bad = c.post("/v1/predict?output=tiff", files={"file": ("film.dcm", data, "application/dicom")})
        assert bad.status_code == 422 and "output" in bad.json()["error"]
