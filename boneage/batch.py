"""Batch scoring: ``boneage predict DIR_OR_GLOB ... --out results.csv``.

An archive of radiographs, one CSV row per file, as fast as the machine allows:

* **Inputs**: folders are walked recursively (files with an image/DICOM extension, or none —
  DICOM files often have none), glob patterns are expanded (``**`` allowed), plain files are
  taken as given. Hidden files and folders are skipped. Order is sorted, so runs are repeatable.
* **Both cores**: decoding and the pipeline (CPU-bound, ≈ 130 ms for a 2000×2500 PNG) run in
  ``workers`` processes (spawned, so none inherits TensorFlow's threads); the main process runs
  the model on the TTA copies of several images at once (:meth:`Predictor.predict_prepared`).
  At most ``2 × workers + batch`` images are in flight, so memory stays bounded on any archive.
* **Resumable**: rows are appended and flushed one by one; a rerun reads the CSV and skips every
  file already in it (errors included — delete a row to retry it). An interrupted run loses at
  most the images in flight.
* Worker processes are *spawned*: a script calling :func:`score` needs the usual
  ``if __name__ == "__main__":`` guard (the CLI has it).
* **Errors are rows, not crashes**: a file that cannot be read gets its one-line reason in the
  ``error`` column, and the run goes on.
"""
from __future__ import annotations

import csv
import glob
import os
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom", ".dic", ""}
COLUMNS = ("file", "bone_age_months", "bone_age_years", "uncertainty_months", "tta_sd_months", "sex",
           "chronological_age_months", "bone_age_minus_chronological_months", "z_score",
           "laterality", "mirrored", "inverted", "hand_found", "warnings", "model_version", "error")


class BatchError(ValueError):
    """Bad batch arguments (no inputs found, unreadable results CSV); one line."""


def expand_inputs(args: Iterable[str]) -> list[Path]:
    """Files named by ``args``: folders recursively, globs expanded, files as given (de-duplicated)."""
    seen: dict[str, Path] = {}
    for a in args:
        p = Path(a)
        if p.is_dir():
            found = [f for f in p.rglob("*") if f.is_file() and _wanted(f, p)]
        elif any(c in a for c in "*?["):
            found = [Path(f) for f in glob.glob(a, recursive=True) if Path(f).is_file() and _wanted(Path(f))]
        else:
            found = [p]  # a missing file becomes an error row, not a silent skip
        for f in sorted(found):
            seen.setdefault(str(f), f)
    return list(seen.values())


def _wanted(f: Path, root: Path | None = None) -> bool:
    rel = f.relative_to(root).parts if root is not None else f.parts[-1:]
    if any(part.startswith(".") for part in rel):
        return False
    return f.suffix.lower() in IMAGE_SUFFIXES


def done_files(csv_path: Path) -> set[str]:
    """Files already in a results CSV (for resuming)."""
    if not csv_path.is_file() or csv_path.stat().st_size == 0:
        return set()
    try:
        with open(csv_path, newline="") as f:
            r = csv.DictReader(f)
            if r.fieldnames is None or "file" not in r.fieldnames:
                raise BatchError(f"{csv_path}: not a boneage results CSV (no 'file' column); choose another --out")
            return {row["file"] for row in r}
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise BatchError(f"{csv_path}: cannot read it to resume ({e})") from None


def prepare_one(path: str, params_dict: dict, tta: int, keep_overlay: bool):
    """Read + pipeline + TTA copies of one file, or its one-line error (runs in worker processes)."""
    from .io import ImageError
    from .pipeline import PipelineParams
    from .predict import prepare

    try:
        prep = prepare(path, PipelineParams.from_dict(params_dict), tta=tta)
    except ImageError as e:
        return path, None, str(e)
    except Exception as e:  # noqa: BLE001 - one bad file must not stop an archive run
        return path, None, f"{path}: unexpected {e.__class__.__name__}: {e}"
    return path, prep.slim(("canonical", "aligned_mask") if keep_overlay else ()), None


@dataclass
class BatchSummary:
    total: int  # files named by the inputs
    skipped: int  # already in the CSV
    predicted: int
    failed: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        n = self.predicted + self.failed
        return n / self.seconds if self.seconds > 0 else 0.0


def row_for(file: str, pred=None, error: str | None = None) -> dict:
    """One CSV row (the columns in :data:`COLUMNS`)."""
    row = {k: "" for k in COLUMNS}
    row["file"] = file
    if error is not None:
        row["error"] = error
        return row
    d = pred.to_dict()
    for k in ("bone_age_months", "bone_age_years", "uncertainty_months", "tta_sd_months", "sex", "model_version"):
        row[k] = d[k]
    for k in ("chronological_age_months", "bone_age_minus_chronological_months", "z_score"):
        v = d.get(k)
        row[k] = "" if v is None else v
    pl = d["pipeline"]
    for k in ("laterality", "mirrored", "inverted", "hand_found"):
        row[k] = pl[k]
    row["warnings"] = " | ".join(d["warnings"])
    return row


def predict_rows(predictor, ready: list[tuple[str, object]], *, sex: str | None = None,
                 clinical: dict | None = None, dicom_out: str | Path | None = None) -> list[dict]:
    """CSV rows for prepared images: the model batched over all of them (local and Ray paths)."""
    from .acceptance import NotAcceptedError
    from .clinical import ClinicalInputError
    from .predict import PredictionError

    rows, resolved, items, names = [], [], [], []
    for name, prep in ready:
        try:
            resolved.append(predictor.resolve_inputs(prep.meta, sex, **(clinical or {})))
        except (PredictionError, ClinicalInputError) as e:
            rows.append(row_for(name, error=f"{name}: {e}"))
            continue
        items.append(prep)
        names.append(name)
    outputs = predictor.predict_prepared(items, [inputs.sex for inputs, _ in resolved])
    for name, prep, (inputs, notes), (months, att, pooled) in zip(names, items, resolved, outputs):
        try:
            p = predictor.finish(prep, inputs, notes, months, att, pooled, name=name)
        except NotAcceptedError as e:  # refused: no bone age, the reason in the error column
            rows.append(row_for(name, error=f"{name}: not accepted: {e.reason}"))
            continue
        except (PredictionError, ClinicalInputError) as e:
            rows.append(row_for(name, error=f"{name}: {e}"))
            continue
        if dicom_out:
            from .dicom_out import write_results

            write_results(p, name, dicom_out)
        rows.append(row_for(name, p))
    return rows


def score(
    predictor,
    files: list[Path],
    out_csv: str | Path,
    *,
    sex: str | None = None,
    tta: int | None = None,
    workers: int | None = None,
    batch_images: int = 8,
    dicom_out: str | Path | None = None,
    clinical: dict | None = None,
    progress: bool = True,
    on_row: Callable[[dict], None] | None = None,
) -> BatchSummary:
    """Score ``files`` into ``out_csv`` (appending; files already there are skipped)."""
    import multiprocessing
    import time

    from tqdm import tqdm

    out = Path(out_csv)
    tta = predictor.tta if tta is None else tta  # the workers prepare the copies: the bundle's count
    out.parent.mkdir(parents=True, exist_ok=True)
    done = done_files(out)
    todo = [str(f) for f in files if str(f) not in done]
    workers = max(1, workers or os.cpu_count() or 1)
    t0 = time.perf_counter()
    n_ok = n_bad = 0
    new_file = not out.is_file() or out.stat().st_size == 0
    bar = tqdm(total=len(todo), unit="img", disable=not progress or not todo, file=sys.stderr,
               desc="bone age", dynamic_ncols=True)

    with open(out, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        if new_file:
            writer.writeheader()

        def emit(row: dict):
            nonlocal n_ok, n_bad
            writer.writerow(row)
            fh.flush()
            n_bad += bool(row["error"])
            n_ok += not row["error"]
            bar.update(1)
            if on_row:
                on_row(row)

        def run_model(ready: list[tuple[str, object]]):
            for row in predict_rows(predictor, ready, sex=sex, clinical=clinical, dicom_out=dicom_out):
                emit(row)

        ctx = multiprocessing.get_context("spawn")
        params = predictor.params.to_dict()
        window = 2 * workers + batch_images
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            pending: set[Future] = set()
            it = iter(todo)
            ready: list[tuple[str, object]] = []
            exhausted = False
            while pending or not exhausted or ready:
                while not exhausted and len(pending) + len(ready) < window:
                    f = next(it, None)
                    if f is None:
                        exhausted = True
                        break
                    pending.add(pool.submit(prepare_one, f, params, tta, bool(dicom_out)))
                if pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        try:
                            name, prep, err = fut.result()
                        except BrokenProcessPool:
                            raise BatchError("a worker process died (out of memory?); rerun the same command "
                                             "to resume") from None
                        if err is not None:
                            emit(row_for(name, error=err))
                        else:
                            ready.append((name, prep))
                # Run the model when a batch is full, or when nothing more can arrive soon.
                if ready and (len(ready) >= batch_images or not pending):
                    run_model(ready)
                    ready = []
    bar.close()
    return BatchSummary(total=len(files), skipped=len(files) - len(todo), predicted=n_ok, failed=n_bad,
                        seconds=time.perf_counter() - t0)


__all__ = ["expand_inputs", "score", "predict_rows", "prepare_one", "done_files", "row_for", "BatchSummary", "BatchError", "COLUMNS"]
