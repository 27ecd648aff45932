"""Batch scoring beyond one machine: the same CSV on Ray Data (optional: ``requirements-ray.txt``).

``boneage predict DIR --out results.csv --ray [--ray-address ray://head:10001]``

Ray Data does the distribution — no home-made layer: the file list becomes a dataset,
``map_batches`` runs :class:`RayScorer` as a **stateful actor** (the model is loaded once per
actor, not per batch), each actor reads, prepares and predicts a batch of files with the model
batched across them (:func:`boneage.batch.predict_rows`, the local path's code), and the driver
streams the rows back into the CSV. Resuming works as locally: files already in the CSV are
skipped. Every worker needs boneage and its requirements installed and the files at the same
paths (a shared file system), as usual for Ray.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

from .batch import COLUMNS, BatchError, BatchSummary, done_files, predict_rows, prepare_one


class RayScorer:
    """Ray Data actor: one loaded Predictor, reused for every batch of file names it is given."""

    def __init__(self, model: str | None = None, sex: str | None = None, tta: int | None = None,
                 clinical: dict | None = None):
        from .predict import Predictor

        self.predictor = Predictor.load(model)
        self.params = self.predictor.params.to_dict()
        self.sex, self.clinical = sex, clinical
        self.tta = self.predictor.tta if tta is None else tta  # the bundle's count unless asked otherwise

    def __call__(self, batch: dict) -> dict:
        rows, ready = [], []
        for f in batch["file"]:
            name, prep, err = prepare_one(str(f), self.params, self.tta, False)
            if err is not None:
                rows.append({k: "" for k in COLUMNS} | {"file": name, "error": err})
            else:
                ready.append((name, prep))
        rows += predict_rows(self.predictor, ready, sex=self.sex, clinical=self.clinical)
        return {k: [str(r[k]) for r in rows] for k in COLUMNS}  # strings: one schema for every batch


def score_on_ray(
    files: list[Path],
    out_csv: str | Path,
    *,
    model: str | None = None,
    sex: str | None = None,
    tta: int | None = None,
    clinical: dict | None = None,
    actors: int = 2,
    batch_size: int = 8,
    address: str | None = None,
    progress: bool = True,
) -> BatchSummary:
    """Score ``files`` into ``out_csv`` with ``actors`` Ray actors (local Ray unless ``address``)."""
    import time

    try:
        import ray
    except ImportError:
        raise BatchError("Ray is not installed: pip install -r requirements-ray.txt") from None
    from tqdm import tqdm

    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = done_files(out)
    todo = [str(f) for f in files if str(f) not in done]
    t0 = time.perf_counter()
    n_ok = n_bad = 0
    if todo:
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        ds = ray.data.from_items([{"file": f} for f in todo]).map_batches(
            RayScorer, fn_constructor_kwargs=dict(model=model, sex=sex, tta=tta, clinical=clinical),
            batch_size=batch_size, concurrency=actors, num_cpus=1, batch_format="numpy",
        )
        new_file = not out.is_file() or out.stat().st_size == 0
        with open(out, "a", newline="") as fh, tqdm(total=len(todo), unit="img", desc="bone age (Ray)",
                                                     disable=not progress, file=sys.stderr) as bar:
            w = csv.DictWriter(fh, fieldnames=COLUMNS)
            if new_file:
                w.writeheader()
            for row in ds.iter_rows():
                w.writerow({k: row[k] for k in COLUMNS})
                fh.flush()
                n_bad += bool(row["error"])
                n_ok += not row["error"]
                bar.update(1)
    return BatchSummary(total=len(files), skipped=len(files) - len(todo), predicted=n_ok, failed=n_bad,
                        seconds=time.perf_counter() - t0)


__all__ = ["RayScorer", "score_on_ray"]
