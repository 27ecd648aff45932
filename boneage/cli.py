"""``boneage`` command line: pipeline, predict, serve, evaluate, train, fetch-weights.

Bad input gets one line on stderr and exit status 2 — never a traceback; TensorFlow's start-up
logging is kept off the terminal (see :mod:`boneage._quiet`). Cheap checks first: every command
checks its paths with :mod:`boneage.preflight` (pathlib only) before it imports TensorFlow or
pandas, so a mistyped path is answered at once instead of after TensorFlow's ≈3–5 s start.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from . import preflight

EXIT_BAD_INPUT = 2
EXIT_NOT_ACCEPTED = 3  # some image was read but refused by the acceptance check, none unreadable


def _fail(msg: str) -> int:
    print(f"boneage: error: {msg}", file=sys.stderr)
    return EXIT_BAD_INPUT


class _Parser(argparse.ArgumentParser):
    """argparse with one-line mistakes: ``boneage predict: error: … (see boneage predict --help)``
    instead of a 6–12-line usage block before the message."""

    def error(self, message: str):  # type: ignore[override]
        msg = " ".join(str(message).split())
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {msg} (see {self.prog} --help)\n")


def _preflight_error(*checks) -> str | None:
    """Run ``(check, value)`` pairs from :mod:`boneage.preflight`, skipping unset values; the first failure's message."""
    for check, value in checks:
        if value is None:
            continue
        try:
            check(value)
        except preflight.PathError as e:
            return str(e)
    return None


def _date(s: str) -> dt.date:
    try:
        return dt.date.fromisoformat(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a date (YYYY-MM-DD)") from None


def _sex(s: str) -> str:
    """Any spelling :func:`boneage.vocab.parse_sex` accepts, as "M"/"F"."""
    from .vocab import SexError, parse_sex

    try:
        return parse_sex(s)
    except SexError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _age_range(s: str) -> tuple[float, float]:
    """``0-96``: bone age from 0 (included) to 96 months (excluded)."""
    try:
        lo, hi = (float(v) for v in s.replace("–", "-").split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a range of months like 0-96") from None
    return lo, hi


def _size(s: str) -> tuple[int, int]:
    """``160x128`` (height × width) or ``160`` (square)."""
    try:
        parts = [int(v) for v in s.lower().replace("×", "x").split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a size like 160x128 (height x width)") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 32:
        raise argparse.ArgumentTypeError(f"{s!r}: give HEIGHTxWIDTH, each at least 32")
    return parts[0], parts[1]


# ----------------------------------------------------------------------------------------------


def cmd_pipeline(a) -> int:
    from .bundle import BundleError, read_meta
    from .pipeline import STAGE_NOTES, STAGES, PipelineParams, run_pipeline

    try:  # the model's own settings (what it was trained with), then the options given
        base = read_meta(a.model).pipeline
    except BundleError as e:
        return _fail(str(e))
    given = dict(clahe_clip=a.clahe_clip, clahe_tiles=a.clahe_tiles, threshold=a.threshold, denoise=a.denoise)
    # parameters first: a ParameterError is one line from main()
    params = PipelineParams.from_dict(base.to_dict() | {k: v for k, v in given.items() if v is not None})
    if err := _preflight_error((preflight.existing_file, a.image), (preflight.output_folder, a.out),
                               (preflight.model_path, a.model)):
        return _fail(err)
    import cv2

    from .io import ImageError, load_image, to_uint8

    try:
        img = load_image(a.image)
    except ImageError as e:
        return _fail(str(e))
    res = run_pipeline(img, params)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for i, name in enumerate(s for s in STAGES if s in res.stages):
        im = res.stages[name]
        im8 = to_uint8(im) if im.dtype != "uint8" else im
        if im8.ndim == 3:
            im8 = cv2.cvtColor(im8, cv2.COLOR_RGB2BGR)
        files[name] = f"{i:02d}_{name}.png"
        cv2.imwrite(str(out / files[name]), im8)
    summary = {"source": str(a.image), "image": img.meta.to_dict(), **res.summary(),
               "stage_files": [{"stage": k, "file": f, "note": STAGE_NOTES.get(k, "")} for k, f in files.items()]}
    summary["warnings"] = list(img.meta.warnings) + summary["warnings"]
    (out / "stages.json").write_text(json.dumps(summary, indent=2))
    print(f"{len(res.stages)} stages written to {out}; rotation {res.rotation_deg:+.1f}°, {res.laterality} hand"
          f"{' (mirrored)' if res.mirrored else ''}{', polarity inverted' if res.inverted else ''}")
    for w in summary["warnings"]:
        print(f"  warning: {w}")
    return 0


def _per_file(values: list | None, n: int, flag: str) -> list:
    """One value for every file, or one per file (``--study-date`` given once or N times)."""
    if not values:
        return [None] * n
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise ValueError(f"{flag} given {len(values)} times for {n} files: give it once (every file) or once per file")
    return list(values)


def _visit(f, r):
    """The follow-up visit of one reading, or a one-line reason it cannot be one."""
    from .clinical import ClinicalInputError
    from .followup import Visit

    c = r.clinical
    if c is None or c.chronological_age_months is None:
        raise ClinicalInputError(f"{f}: no chronological age, so it cannot be placed on the follow-up "
                                 "(give --birth-date with study dates, or --age-months once per file)")
    return Visit(c.chronological_age_months, r.bone_age_months, c.study_date, r.uncertainty_months, str(f))


def _print_follow_up(fu, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"follow_up": fu.to_dict()}, allow_nan=False), flush=True)
        return
    print(f"follow-up ({'boy' if fu.sex == 'M' else 'girl'}): {fu.summary()}")
    for i in fu.intervals:
        sd = "" if i.velocity_sd is None else f" ± {i.velocity_sd:.2f}"
        print(f"  {i.start.label} -> {i.end.label}: {i.months:.1f} months, bone age {i.bone_age_change_months:+.1f} "
              f"months, velocity {i.velocity:.2f}{sd}")


def cmd_predict(a) -> int:
    from .checks import check_int
    from .predict import MAX_TTA

    if a.tta is not None:  # parameters first: a ParameterError is one line from main()
        check_int(a.tta, "tta", lo=1, hi=MAX_TTA, flag="--tta")

    from .batch import BatchError, expand_inputs, score
    from .clinical import ClinicalInputError, check_parent_heights
    from .followup import follow_up, one_child, read_results

    files = [str(p) for p in expand_inputs(a.files)]  # folders recursively, globs expanded
    if not files:
        return _fail(f"no image files found in {' '.join(a.files)}")
    n = len(files)
    try:  # clinical options need no model: nonsense fails fast, before any file is read
        per_file = list(zip(files, _per_file(a.age_months, n, "--age-months"),
                            _per_file(a.study_date, n, "--study-date"), _per_file(a.height_cm, n, "--height-cm")))
        check_parent_heights(a.father_height_cm, a.mother_height_cm)
        earlier = [v for path in a.previous or [] for v in read_results(path)]
    except (ValueError, ClinicalInputError) as e:
        return _fail(str(e))
    follow = a.follow_up or bool(earlier)
    if follow and len(earlier) + n < 2:
        return _fail("follow-up needs at least two visits (several files, or --previous with earlier results)")
    if a.out and follow:
        return _fail("--out (batch scoring) does not combine with --follow-up / --previous")
    if a.out and any(v and len(v) > 1 for v in (a.age_months, a.study_date, a.height_cm)):
        return _fail("with --out, give --age-months / --study-date / --height-cm once (they apply to every file)")

    if err := _preflight_error((preflight.model_path, a.model)):
        return _fail(err)
    rc, todo = 0, []
    for item in per_file:  # every missing file is named (the others still run), before the model loads
        if err := _preflight_error((preflight.existing_file, item[0])):
            rc = _fail(err)
        else:
            todo.append(item)
    if not todo:
        return rc

    from .acceptance import NotAcceptedError
    from .io import ImageError
    from .predict import PredictionError, Predictor

    try:
        pred = Predictor.load(a.model)
    except PredictionError as e:
        return _fail(str(e))
    if a.out:
        first = lambda v: v[0] if v else None  # noqa: E731
        clinical = dict(chronological_age_months=first(a.age_months), birth_date=a.birth_date,
                        study_date=first(a.study_date), height_cm=first(a.height_cm),
                        father_height_cm=a.father_height_cm, mother_height_cm=a.mother_height_cm)
        clinical = {k: v for k, v in clinical.items() if v is not None}
        try:
            if a.ray:
                from .ray_batch import score_on_ray

                if a.dicom_out:
                    return _fail("--dicom-out is not available with --ray (write DICOM from a local run)")
                s = score_on_ray([Path(t[0]) for t in todo], a.out, model=a.model, sex=a.sex, tta=a.tta,
                                 clinical=clinical, actors=a.workers or 2, address=a.ray_address,
                                 progress=not a.quiet)
            else:
                s = score(pred, [Path(t[0]) for t in todo], a.out, sex=a.sex, tta=a.tta, workers=a.workers,
                          dicom_out=a.dicom_out, clinical=clinical, progress=not a.quiet)
        except BatchError as e:
            return _fail(str(e))
        print(f"{s.predicted} predicted, {s.failed} failed, {s.skipped} already in {a.out} (of {s.total}); "
              f"{s.images_per_s:.1f} images/s")
        return EXIT_BAD_INPUT if (s.failed or rc) else 0
    visits, refused = list(earlier), False
    for f, age, study, height in todo:
        try:
            r = pred.predict(f, sex=a.sex, tta=a.tta, chronological_age_months=age, birth_date=a.birth_date,
                             study_date=study, height_cm=height, father_height_cm=a.father_height_cm,
                             mother_height_cm=a.mother_height_cm, accept_unusual=a.accept_unusual)
        except NotAcceptedError as e:  # one stderr line; with --json a line without a bone age
            print(f"{f}: not accepted: {e.reason}", file=sys.stderr, flush=True)
            if a.json:
                print(json.dumps({"file": str(f), "accepted": False, "reason": e.reason,
                                  "scores": {k: round(v, 4) for k, v in e.scores.items()}}), flush=True)
            refused = True
            continue
        except (ImageError, PredictionError, ClinicalInputError) as e:
            msg = str(e)
            print(f"boneage: error: {msg if msg.startswith(str(f)) else f'{f}: {msg}'}", file=sys.stderr)
            rc = EXIT_BAD_INPUT
            continue
        dicom_files = []
        if a.dicom_out:
            from .dicom_out import write_results

            dicom_files = [str(p) for p in write_results(r, f, a.dicom_out)]
        if a.json:  # allow_nan=False: a NaN would make the line invalid JSON (Predictor refuses them first)
            extra = {"dicom_files": dicom_files} if a.dicom_out else {}
            print(json.dumps({"file": str(f), **r.to_dict(), **extra}, allow_nan=False), flush=True)
        else:
            spread = (f"90% interval {r.interval_90_months[0]:.0f}–{r.interval_90_months[1]:.0f} months"
                      if r.interval_90_months is not None else f"± {r.uncertainty_months:.1f} months")
            print(f"{f}: bone age {r.bone_age_months:.1f} months ({r.bone_age_years_text}), {spread} "
                  f"[{r.sex}, model {r.model_version}]")
            if r.clinical is not None:
                print(f"  {r.clinical.summary()}")
            for w in r.warnings:
                print(f"  warning: {w}")
            if dicom_files:
                print(f"  DICOM: {', '.join(Path(p).name for p in dicom_files)} in {a.dicom_out}")
        if follow:  # after the reading is shown: a visit that cannot be placed loses no bone age
            try:
                visits.append((_visit(f, r), r.sex))
            except ClinicalInputError as e:
                print(f"boneage: error: {e}", file=sys.stderr)
                rc = EXIT_BAD_INPUT
    if follow:
        try:
            _print_follow_up(follow_up([v for v, _ in visits], one_child(visits) if visits else "F"), a.json)
        except ClinicalInputError as e:
            return _fail(f"follow-up: {e}")
    return rc or (EXIT_NOT_ACCEPTED if refused else 0)


def cmd_serve(a) -> int:
    from .predict import PredictionError
    from .serve import ServeConfig, run

    from .checks import check_float
    from .io import MAX_BYTES

    mb = check_float(a.max_upload_mb, "max_upload_mb", lo=0.0, lo_open=True, hi=MAX_BYTES / 1e6, flag="--max-upload-mb")
    # MB = 10⁶ bytes, as the app's upload widget and the loader count them; ServeConfig checks the rest
    cfg = ServeConfig(max_upload_bytes=int(mb * 10**6), workers=a.workers, queue=a.queue, tta=a.tta)
    try:
        run(a.model, a.host, a.port, cfg)
    except PredictionError as e:
        return _fail(str(e))
    return 0


def cmd_evaluate(a) -> int:
    if err := _preflight_error((preflight.labels_file, a.data), (preflight.model_path, a.model),
                               (preflight.output_file, a.out), (preflight.output_file, a.json)):
        return _fail(err)
    from .data import DataError
    from .evaluate import evaluate
    from .predict import PredictionError

    try:
        df, m = evaluate(a.data, model_path=a.model, tta=a.tta, limit=a.limit)
    except (DataError, PredictionError) as e:
        return _fail(str(e))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    json_path = Path(a.json) if a.json else out.with_suffix(".json")
    json_path.write_text(json.dumps(m, indent=2))
    for p in m["problems"]:
        print(f"  skipped: {p}", file=sys.stderr)
    print(f"{m['n']} of {m['n_listed']} images predicted ({m['n_failed']} failed, {m['n_refused']} not accepted as a "
          f"child's hand radiograph) with {m['model_version']}")
    if m["n"]:
        print(f"MAE {m['mae']:.2f}  RMSE {m['rmse']:.2f}  bias {m['bias']:+.2f} months (accepted images only)")
        if m.get("interval_90_coverage") is not None:
            print(f"90% interval coverage {100 * m['interval_90_coverage']:.1f}%, mean width {m['interval_90_mean_width']:.1f} months")
        print("MAE by sex: " + ", ".join(f"{k} {v:.2f}" for k, v in m["mae_by_sex"].items() if v is not None))
        print("MAE by age band: " + ", ".join(f"{k} {v:.2f} (n={m['n_by_age_band'][k]})" for k, v in m["mae_by_age_band"].items() if v is not None))
        for key, what in (("bias_by_5y_band", "true"), ("bias_by_predicted_5y_band", "predicted")):
            print(f"bias by 5-year band of {what} age: "
                  + ", ".join(f"{k} {v:+.1f}" for k, v in m[key].items() if v is not None))
    print(json.dumps({k: v for k, v in m.items() if k != "problems"}, allow_nan=False))
    print(f"wrote {out} and {json_path}")
    return 0


def cmd_train(a) -> int:
    h, w = a.image_size
    ih, iw = a.input_size or (None, None)
    if err := _preflight_error((preflight.training_data, a.data), (preflight.output_folder, a.out),
                               (preflight.existing_path, a.init_from)):
        return _fail(err)
    from .data import DataError
    from .train import TrainConfig, TrainError, train

    cfg = TrainConfig(
        data=a.data, out=a.out, backbone=a.backbone, image_height=h, image_width=w, epochs=a.epochs,
        input_height=ih, input_width=iw,
        batch_size=a.batch_size, learning_rate=a.lr, val_fraction=a.val_fraction, pretrained=not a.no_pretrained,
        trainable_fraction=a.trainable_fraction, patience=a.patience, seed=a.seed, strategy=a.strategy,
        resume=a.resume, limit=a.limit, workers=a.workers, init_from=a.init_from, warmup_epochs=a.warmup_epochs,
        augment_strength=a.augment_strength, ema_momentum=a.ema, age_balance=a.age_balance, head=a.head,
        max_minutes=a.max_minutes, age_range=a.age_range, teacher=a.teacher, teacher_weight=a.teacher_weight,
    )  # every setting checked here (TrainConfig.__post_init__): a ParameterError is one line from main()
    try:
        train(cfg)
    except (DataError, TrainError) as e:
        return _fail(str(e))
    return 0


def cmd_fetch_weights(a) -> int:
    from .weights import SOURCES, WeightsError, fetch_pretrained, sha256_file

    rc = 0
    for name in a.only or sorted(SOURCES):
        try:
            path = fetch_pretrained(name, a.dest, force=a.force)
            print(f"{name}: {path} (sha256 {sha256_file(path)})")
        except WeightsError as e:
            print(f"boneage: error: {name}: {e}", file=sys.stderr)
            rc = 1  # a failed download or check, not bad input
    return rc


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .pipeline import DENOISE_METHODS, THRESHOLD_METHODS, PipelineParams
    from .train import STRATEGIES, TrainConfig
    from .weights import SOURCES, default_dir

    p = _Parser(prog="boneage", description="Bone age from hand/wrist radiographs. Research software, not a medical device.")
    p.add_argument("--version", action="version", version=f"boneage {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("pipeline", help="run the preprocessing pipeline and write every stage")
    s.add_argument("image")
    s.add_argument("--out", required=True, help="folder for NN_<stage>.png and stages.json")
    s.add_argument("--model", help="take the pipeline settings from this model (default: the model in use)")
    pp = PipelineParams()
    s.add_argument("--clahe-clip", type=float, help=f"default: the model's ({pp.clahe_clip:g} in the study)")
    s.add_argument("--clahe-tiles", type=int, help=f"default: the model's ({pp.clahe_tiles} in the study)")
    s.add_argument("--threshold", choices=THRESHOLD_METHODS, help=f"default: the model's ({pp.threshold} in the study)")
    s.add_argument("--denoise", choices=DENOISE_METHODS, help=f"default: the model's ({pp.denoise} in the study)")
    s.set_defaults(func=cmd_pipeline)

    s = sub.add_parser("predict", help="bone age for one or more radiographs",
                       description="Exit status: 0 all predicted; 2 some file unreadable or bad input; "
                                   "3 some image not accepted as a child's hand radiograph (and none unreadable).")
    s.add_argument("files", nargs="+", metavar="FILE_DIR_OR_GLOB", help="images, folders (recursive) or globs ('**' allowed)")
    s.add_argument("--sex", type=_sex, help="M or F (also male/female, boy/girl); required unless the DICOM says")
    s.add_argument("--out", metavar="CSV", help="batch scoring: one row per file into CSV (resumable: files already "
                   "in it are skipped), decode and pipeline in worker processes, progress bar")
    s.add_argument("--workers", type=int, default=None, help="with --out: preprocessing processes (default: cores)")
    s.add_argument("--quiet", action="store_true", help="with --out: no progress bar")
    s.add_argument("--ray", action="store_true", help="with --out: score on Ray Data (requirements-ray.txt); "
                   "--workers = actors (default 2)")
    s.add_argument("--ray-address", metavar="ADDRESS", help="with --ray: an existing cluster (e.g. ray://head:10001; "
                   "default: $RAY_ADDRESS or a local Ray)")
    s.add_argument("--json", action="store_true", help="one JSON object per line")
    s.add_argument("--model", help="run folder or .keras file (default: the shipped model)")
    s.add_argument("--tta", type=int, default=None, help="test-time augmentation copies (default: the bundle's, 8 unless its meta.json says; 1 = off)")
    s.add_argument("--age-months", type=float, action="append",
                   help="chronological age in months (once for every file, or once per file)")
    s.add_argument("--birth-date", type=_date)
    s.add_argument("--study-date", type=_date, action="append",
                   help="YYYY-MM-DD (once for every file, or once per file; DICOM files carry their own)")
    s.add_argument("--height-cm", type=float, action="append",
                   help="current height, for the Bayley–Pinneau adult height (once, or once per file)")
    s.add_argument("--father-height-cm", type=float, help="father's height, for the mid-parental target height")
    s.add_argument("--mother-height-cm", type=float, help="mother's height, for the mid-parental target height")
    s.add_argument("--accept-unusual", action="store_true",
                   help="research use: predict even when the image does not look like a child's hand radiograph "
                        "(the output says so)")
    s.add_argument("--follow-up", action="store_true",
                   help="the files are visits of one child, oldest first: adds the bone-age velocity")
    s.add_argument("--previous", action="append", metavar="RESULTS",
                   help="earlier results of the same child (JSON lines from --json), as the first visits; "
                        "implies --follow-up")
    s.add_argument("--dicom-out", metavar="DIR", help="also write DICOM results (overlay Secondary Capture + "
                   "Encapsulated PDF report), in the source study for DICOM input")
    s.set_defaults(func=cmd_predict)

    from .serve import DEFAULT_HOST, DEFAULT_PORT

    s = sub.add_parser("serve", help="REST service (FastAPI): POST /v1/predict, GET /health, docs at /docs")
    s.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}: this machine only)")
    s.add_argument("--port", type=int, default=DEFAULT_PORT)
    s.add_argument("--model", help="run folder or .keras file (default: the shipped model)")
    s.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="predictions running at once (default: cores)")
    s.add_argument("--queue", type=int, default=0, help="requests allowed to wait beyond --workers (default 4 × workers); more get 503")
    s.add_argument("--max-upload-mb", type=float, default=100, help="largest upload accepted (default 100 MB)")
    s.add_argument("--tta", type=int, default=None, help="test-time augmentation copies (default: the bundle's, 8 unless its meta.json says; 1 = off)")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("evaluate", help="predict every image of a labelled folder and report errors")
    s.add_argument("--data", required=True, help="folder with labels.csv (id,boneage_months,male) and the images")
    s.add_argument("--model")
    s.add_argument("--out", required=True, help="predictions CSV")
    s.add_argument("--json", help="metrics JSON (default: beside --out)")
    s.add_argument("--tta", type=int, default=None)
    s.add_argument("--limit", type=int)
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("train", help="train a model on an RSNA-layout folder")
    # The defaults live in the dataclass, not here (read from its fields: building one would import Keras).
    t = argparse.Namespace(**{f.name: f.default for f in dataclasses.fields(TrainConfig)})
    s.add_argument("--data", required=True, help="RSNA-layout folder (labels.csv and images), or a packed-inputs .npz "
                   "(scripts/train_gpu.sh pack: the pipeline's outputs for a machine without the images)")
    s.add_argument("--out", required=True, help="run folder (model.keras, metrics.json, history.csv, …)")
    s.add_argument("--backbone", choices=["efficientnet_lite0", "xception", "tiny"], default=t.backbone)
    s.add_argument("--image-size", type=_size, default=(t.image_height, t.image_width),
                   help=f"HEIGHTxWIDTH of the model input (default {t.image_height}x{t.image_width})")
    s.add_argument("--input-size", type=_size, default=None,
                   help="HEIGHTxWIDTH of the pipeline output the network reads, resized inside it to --image-size "
                        "(an ensemble member at a finer grid reading the bundle's 160x128 output; default: --image-size)")
    s.add_argument("--epochs", type=int, default=t.epochs)
    s.add_argument("--batch-size", type=int, default=t.batch_size)
    s.add_argument("--lr", type=float, default=t.learning_rate)
    s.add_argument("--trainable-fraction", type=float, default=t.trainable_fraction,
                   help="share of backbone layers trained (from the top)")
    s.add_argument("--no-pretrained", action="store_true", help="random initialisation instead of ImageNet")
    s.add_argument("--val-fraction", type=float, default=t.val_fraction)
    s.add_argument("--patience", type=int, default=t.patience)
    s.add_argument("--max-minutes", type=float, default=t.max_minutes,
                   help="stop after the epoch that leaves no time for another (a time-limited machine); the best epoch is kept")
    s.add_argument("--seed", type=int, default=t.seed)
    s.add_argument("--strategy", choices=STRATEGIES, default=t.strategy)
    s.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    s.add_argument("--init-from", help="start from a trained model (run folder, .keras or .weights.h5): fine-tuning")
    s.add_argument("--warmup-epochs", type=float, default=t.warmup_epochs, help="linear LR warm-up, in epochs")
    s.add_argument("--augment-strength", type=float, default=t.augment_strength,
                   help="scale of every augmentation range (1 = default; 0.5 for a closer-fitting fine-tuning phase)")
    s.add_argument("--ema", type=float, default=t.ema_momentum, metavar="MOMENTUM",
                   help="keep a moving average of the weights (e.g. 0.995) and validate/ship it (default 0 = off)")
    s.add_argument("--age-balance", type=float, default=t.age_balance, metavar="ALPHA",
                   help="weight each image by its 1-year age bin's share^-ALPHA (0 = plain MAE, 0.5 = lift the thin ends)")
    s.add_argument("--age-range", type=_age_range, metavar="LO-HI",
                   help="train and validate only on true bone ages in [LO, HI) months, e.g. 0-96 "
                        "(an age-range specialist; the split by id is unchanged)")
    s.add_argument("--teacher", metavar="CSV",
                   help="knowledge distillation: another model's reading of each training image (id, teacher_months; "
                        "scripts/teacher_readings.py); the target becomes a blend of the label and that reading")
    s.add_argument("--teacher-weight", type=float, default=t.teacher_weight, metavar="W",
                   help=f"the teacher's share of the training target (default {t.teacher_weight:g}; validation stays on the labels)")
    s.add_argument("--head", choices=["regression", "distribution"], default=t.head,
                   help="one linear output (the study's) or a softmax over 2-month age bins trained with "
                        "label-distribution learning (see boneage.model)")
    s.add_argument("--limit", type=int, help="use only the first N labelled images (smoke tests)")
    s.add_argument("--workers", type=int, help="preprocessing processes")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("fetch-weights", help="download, verify and convert ImageNet weights (offline use)")
    s.add_argument("--dest", type=Path, default=None, help=f"output folder (default: {default_dir()})")
    s.add_argument("--only", choices=sorted(SOURCES), action="append", help="fetch just these (repeatable)")
    s.add_argument("--force", action="store_true", help="re-download and re-convert even if cached")
    s.set_defaults(func=cmd_fetch_weights)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        return int(a.func(a) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except ValueError as e:
        from .checks import ParameterError

        if not isinstance(e, ParameterError):
            if os.environ.get("BONEAGE_DEBUG"):
                raise
            return _fail(f"unexpected {e.__class__.__name__}: {e} (set BONEAGE_DEBUG=1 for details)")
        return _fail(str(e))
    except Exception as e:  # noqa: BLE001 - last line of defence: one line, not a traceback
        if os.environ.get("BONEAGE_DEBUG"):
            raise
        return _fail(f"unexpected {e.__class__.__name__}: {e} (set BONEAGE_DEBUG=1 for details)")


if __name__ == "__main__":
    sys.exit(main())
