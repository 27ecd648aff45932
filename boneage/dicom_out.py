"""DICOM results (``boneage predict --dicom-out DIR``, ``POST /v1/predict?output=dicom``).

For each prediction two objects, built with highdicom (patient/study/series/equipment modules
come from the library, not from hand-set tags):

* a **Secondary Capture** (RGB) of the annotated overlay — aligned radiograph, attention heatmap,
  ROI boxes, with the bone age, its uncertainty, the model version and "NOT FOR DIAGNOSIS" burned
  into a banner above the image (``BurnedInAnnotation`` YES);
* the one-page **PDF report** as an Encapsulated PDF (highdicom has no class for this IOD, so the
  common modules come from :class:`highdicom.base.SOPClass` and the Encapsulated Document and SC
  Equipment modules are added here, attribute by attribute, per PS3.3 A.45.1).

Decisions:

* **Same study for DICOM input.** StudyInstanceUID, PatientID, PatientName, birth date, sex,
  AccessionNumber, StudyID, study date/time and referring physician are copied from the source
  (``SCImage.from_ref_dataset``); each object is in a **new series** (its own SeriesInstanceUID,
  SeriesNumber 9901 / 9902 — high numbers that sort after the acquisition's series) and refers
  back to the source instance (Source Image Sequence / Source Instance Sequence), so a PACS files
  the result with the radiograph it came from. For PNG/JPEG/TIFF input there is no study to join:
  a new StudyInstanceUID, empty patient identity (type 2 attributes present but empty).
* **Orientation of the overlay.** The overlay is the pipeline's canonical view: upright (fingers
  at the top, so down the column is towards the wrist: H) with the thumb on the image's right.
  The thumb is lateral, i.e. towards the patient's own side, so the row direction is L for a left
  hand and R for a mirrored right hand; laterality is recorded. When the hand or its side was not
  found, PatientOrientation is left empty (it is type 2C: present, empty when unknown) rather
  than guessed.
* Explicit VR Little Endian, uncompressed: every PACS reads it.
"""
from __future__ import annotations

import datetime as _dt
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import __version__
from .report import DISCLAIMER

MANUFACTURER = "boneage (open-source research software)"
SC_SERIES_NUMBER = 9901
PDF_SERIES_NUMBER = 9902
SERIES_DESCRIPTION_SC = "Bone age overlay (boneage) - NOT FOR DIAGNOSIS"
SERIES_DESCRIPTION_PDF = "Bone age report (boneage) - NOT FOR DIAGNOSIS"
ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
BANNER_TEXT_NOT_FOR_DIAGNOSIS = "RESEARCH SOFTWARE - NOT FOR DIAGNOSIS"


@dataclass
class DicomResults:
    """The objects written for one prediction (pydicom datasets), with file names."""

    secondary_capture: "object"  # highdicom.sc.SCImage
    pdf: "object"  # highdicom.base.SOPClass with the Encapsulated Document module
    same_study: bool

    def items(self) -> list[tuple[str, "object"]]:
        return [(f"SC_{self.secondary_capture.SOPInstanceUID}.dcm", self.secondary_capture),
                (f"DOC_{self.pdf.SOPInstanceUID}.dcm", self.pdf)]


def read_source_dataset(source) -> "object | None":
    """The source DICOM header (no pixels) for path/bytes input that is DICOM, else None."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            data = f.read()
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        return None
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=data[128:132] != b"DICM")
    except (InvalidDicomError, Exception):  # noqa: BLE001 - not DICOM: a new study is made
        return None
    if "StudyInstanceUID" not in ds or "SOPInstanceUID" not in ds:
        return None
    return ds


def annotated_overlay(pred) -> np.ndarray:
    """The overlay (uint8 RGB) with a banner burned in above it: result, provenance, disclaimer."""
    img = pred.overlay_rgb()
    h, w = img.shape[:2]
    scale = max(0.5, w / 900.0)
    thick = max(1, int(round(scale * 1.6)))
    line_h = int(34 * scale)
    spread = f"+/- {pred.uncertainty_months:.1f} months (1 SD)"
    try:  # a calibrated 90 % interval (low, high), where the Prediction carries one
        lo, hi = (float(v) for v in getattr(pred, "interval_90_months", None))
        spread = f"90% interval {lo:.0f}-{hi:.0f} months"
    except (TypeError, ValueError):
        pass
    lines = [
        (f"Bone age {pred.bone_age_years_text} ({pred.bone_age_months:.1f} months), {spread}", (255, 255, 255)),
        (f"Sex {pred.sex} | model {pred.model_version} | boneage {__version__} | Greulich-Pyle scale", (200, 200, 200)),
        (BANNER_TEXT_NOT_FOR_DIAGNOSIS, (255, 80, 80)),
    ]
    banner = np.zeros((line_h * len(lines) + line_h // 2, w, 3), np.uint8)
    for i, (text, colour) in enumerate(lines):
        fs = 0.62 * scale
        (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fs, thick)
        if tw > w - 16:  # long model names on narrow images: shrink to fit
            fs *= (w - 16) / tw
        cv2.putText(banner, text, (8, line_h * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, fs, colour, thick, cv2.LINE_AA)
    return np.ascontiguousarray(np.vstack([banner, img]))


def _orientation(pred) -> tuple[tuple[str, str] | None, str | None]:
    p = pred.pipeline
    if not p.hand_found or p.laterality not in ("left", "right"):
        return None, None
    side = "L" if p.laterality == "left" else "R"
    return (side, "H"), side


def _common(src, now: _dt.datetime) -> dict:
    from highdicom import UID

    d = dict(manufacturer=MANUFACTURER, manufacturer_model_name="boneage",
             software_versions=__version__, content_date=now.date(), content_time=now.time())
    if src is None:
        d.update(study_instance_uid=UID(), patient_id=None, patient_name=None, patient_birth_date=None,
                 patient_sex=None, accession_number=None, study_id=None, study_date=now.date(),
                 study_time=now.time(), referring_physician_name=None)
    else:
        d.update(study_instance_uid=src.StudyInstanceUID, patient_id=src.get("PatientID"),
                 patient_name=src.get("PatientName"), patient_birth_date=src.get("PatientBirthDate") or None,
                 patient_sex=src.get("PatientSex") if src.get("PatientSex") in ("M", "F", "O") else None,
                 accession_number=src.get("AccessionNumber"),
                 study_id=src.get("StudyID"), study_date=src.get("StudyDate") or None,
                 study_time=src.get("StudyTime") or None, referring_physician_name=src.get("ReferringPhysicianName"))
    return d


def _source_ref(src):
    from pydicom.dataset import Dataset

    item = Dataset()
    item.ReferencedSOPClassUID = src.SOPClassUID
    item.ReferencedSOPInstanceUID = src.SOPInstanceUID
    return item


def build_secondary_capture(pred, src, common: dict):
    """highdicom SCImage of :func:`annotated_overlay` in the study that ``common`` names."""
    from highdicom import UID
    from highdicom.sc import SCImage
    from pydicom.uid import ExplicitVRLittleEndian

    orientation, laterality = _orientation(pred)
    pixels = annotated_overlay(pred)
    sc = SCImage(
        pixel_array=pixels, photometric_interpretation="RGB", bits_allocated=8, coordinate_system="PATIENT",
        series_instance_uid=UID(), series_number=SC_SERIES_NUMBER, sop_instance_uid=UID(), instance_number=1,
        patient_orientation=orientation or ("L", "H"), laterality=laterality,
        transfer_syntax_uid=ExplicitVRLittleEndian, series_description=SERIES_DESCRIPTION_SC,
        **common,
    )
    if orientation is None:
        sc.PatientOrientation = ""  # type 2C: present, empty when the hand's side is unknown
    sc.BurnedInAnnotation = "YES"
    sc.ImageComments = DISCLAIMER
    sc.DerivationDescription = "boneage overlay: aligned radiograph, attention heatmap, ROI boxes, result banner"
    if src is not None:
        sc.SourceImageSequence = [_source_ref(src)]
    return sc


def build_encapsulated_pdf(pdf_bytes: bytes, pred, src, common: dict, now: _dt.datetime):
    """Encapsulated PDF (PS3.3 A.45.1) of the report, in the study that ``common`` names."""
    from highdicom import UID
    from highdicom.base import SOPClass
    from pydicom.uid import ExplicitVRLittleEndian

    if not pdf_bytes.startswith(b"%PDF"):
        raise ValueError("report is not a PDF")
    ds = SOPClass(
        series_instance_uid=UID(), series_number=PDF_SERIES_NUMBER, sop_instance_uid=UID(),
        sop_class_uid=ENCAPSULATED_PDF_STORAGE, instance_number=1, modality="DOC",
        transfer_syntax_uid=ExplicitVRLittleEndian, series_description=SERIES_DESCRIPTION_PDF,
        **common,
    )
    # SC Equipment module (mandatory in the Encapsulated PDF IOD): made on a workstation.
    ds.ConversionType = "WSD"
    # Encapsulated Document module.
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"  # the PDF names the patient label and the result
    ds.DocumentTitle = f"Bone age report (boneage {pred.model_version}) - not for diagnosis"
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(pdf_bytes)
    ds.EncapsulatedDocument = pdf_bytes + (b"\0" if len(pdf_bytes) % 2 else b"")
    if src is not None:
        ds.SourceInstanceSequence = [_source_ref(src)]
    return ds


def report_pdf(pred, src=None) -> bytes:
    """The app's one-page PDF report for this prediction (one report for app, CLI and API)."""
    from .report import make_pdf_report

    def tag(name: str) -> str | None:
        return str(src.get(name)) if src is not None and src.get(name) else None

    return make_pdf_report(image_rgb=pred.overlay_rgb(), bone_age_months=pred.bone_age_months,
                           uncertainty_months=pred.uncertainty_months, sex=pred.sex,
                           model_version=pred.model_version, interpretation=pred.clinical,
                           warnings=pred.warnings, patient_label=tag("PatientName"),
                           patient_id=tag("PatientID"), accession_number=tag("AccessionNumber"),
                           interval_90_months=getattr(pred, "interval_90_months", None))


def build_results(pred, source=None, *, now: _dt.datetime | None = None) -> DicomResults:
    """Both objects for ``pred``; ``source`` is the input (path or bytes) — joined when DICOM."""
    now = now or _dt.datetime.now()
    src = read_source_dataset(source) if source is not None else None
    common = _common(src, now)  # once: for non-DICOM input both objects share one new study
    sc = build_secondary_capture(pred, src, common)
    pdf = build_encapsulated_pdf(report_pdf(pred, src), pred, src, common, now)
    return DicomResults(secondary_capture=sc, pdf=pdf, same_study=src is not None)


def write_results(pred, source, out_dir: str | Path) -> list[Path]:
    """Write the objects into ``out_dir`` (created); returns the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, ds in build_results(pred, source).items():
        p = out / name
        ds.save_as(p, enforce_file_format=True)
        paths.append(p)
    return paths


def dicom_results_zip(pred, source) -> bytes:
    """The objects as a ZIP (the REST API's ``output=dicom`` answer)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, ds in build_results(pred, source).items():
            b = io.BytesIO()
            ds.save_as(b, enforce_file_format=True)
            z.writestr(name, b.getvalue())
    return buf.getvalue()


__all__ = ["DicomResults", "annotated_overlay", "build_results", "write_results", "dicom_results_zip"]
