"""Assemble the shipped model bundle in models/ from a training run and measured evaluations.

Copies model.keras, meta.json, history.csv and val_predictions.csv from the run, and writes
card.json + README.md (the model card) from the measured figures only — nothing typed by hand.
README.md is rendered from card.json and meta.json alone (:func:`render_readme`), so it can be
rebuilt without the training runs and without touching the model:

    python scripts/make_model_card.py --run runs/effnet_160x128 \
        --val-eval runs/val_eval.json --hires-eval runs/hires_eval.json \
        --xception runs/xception/metrics.json --bench runs/bench_predict.json --out models
    python scripts/make_model_card.py --from-card models     # README.md again from card.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # card_uncertainty beside this script, also when loaded by a test
from boneage import benchmarks, bundle  # noqa: E402
from boneage.paths import MODELS_DIR  # noqa: E402
from card_uncertainty import section as uncertainty_section  # noqa: E402  acceptance rates, interval coverage


def sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _load(p: str | None) -> dict | None:
    return json.loads(Path(p).read_text()) if p and Path(p).is_file() else None


def _fmt(v, nd=2):
    return "—" if v is None else (f"{v:.{nd}f}" if isinstance(v, (int, float)) else str(v))


def _metric_rows(m: dict | None) -> list[str]:
    if not m:
        return ["| (not measured) | |"]
    rows = [f"| overall MAE | {_fmt(m['mae'])} |", f"| RMSE | {_fmt(m['rmse'])} |", f"| bias (pred − true) | {_fmt(m['bias'], 2)} |"]
    if m.get("n_refused"):  # an evaluate summary: the MAE is over the accepted images only
        rows.insert(0, f"| images scored | {m['n']} of {m['n_listed']} ({m['n_refused']} refused by the acceptance check) |")
    rows += [f"| MAE {k} | {_fmt(v)} |" for k, v in m.get("mae_by_sex", {}).items()]
    rows += [f"| MAE {k} (n={m.get('n_by_age_band', {}).get(k, '?')}) | {_fmt(v)} |" for k, v in m.get("mae_by_age_band", {}).items()]
    for key, what in (("bias_by_5y_band", "true"), ("bias_by_predicted_5y_band", "predicted")):
        if m.get(key):  # boneage.metrics.band_figures: issue #9's criterion is by true age
            rows.append(f"| bias by 5-year band of {what} age | "
                        + ", ".join(f"{k} {v:+.1f}" for k, v in m[key].items() if v is not None) + " |")
    return rows


def _command(run: Path, cfg: dict) -> str:
    c = (f"boneage train --data ../shared/data/rsna-bone-age/train-100px --out {run} "
         f"--backbone {cfg['backbone']} --image-size {cfg['image_height']}x{cfg['image_width']} "
         f"--epochs {cfg['epochs']} --batch-size {cfg['batch_size']} --lr {cfg['learning_rate']} "
         f"--trainable-fraction {cfg['trainable_fraction']} --patience {cfg['patience']}")
    if cfg.get("warmup_epochs", 0.5) != 0.5:
        c += f" --warmup-epochs {cfg['warmup_epochs']}"
    if cfg.get("augment_strength", 1.0) != 1.0:
        c += f" --augment-strength {cfg['augment_strength']}"
    if cfg.get("ema_momentum", 0.0):
        c += f" --ema {cfg['ema_momentum']}"
    if cfg.get("age_balance", 0.0):
        c += f" --age-balance {cfg['age_balance']}"
    if cfg.get("age_range"):
        c += f" --age-range {cfg['age_range'][0]:g}-{cfg['age_range'][1]:g}"
    if cfg.get("seed", 42) != 42:
        c += f" --seed {cfg['seed']}"
    if cfg.get("init_from"):
        c += f" --init-from {cfg['init_from']}"
    return c


def command_lines(command: str, width: int = 88) -> str:
    """A long ``boneage train …`` command as shell lines ending in `` \\``, one or more options per line."""
    head, *opts = command.split(" --")
    parts, lines, line = [head] + [f"--{o}" for o in opts], [], ""
    for part in parts:
        if line and len(line) + 1 + len(part) > width:
            lines.append(line)
            line = "    " + part
        else:
            line = f"{line} {part}" if line else part
    lines.append(line)
    return " \\\n".join(lines)


def _phases(run: Path) -> list[tuple[Path, dict]]:
    """The run and the runs it was fine-tuned from (``--init-from``), earliest first, with their configs."""
    chain = []
    src: Path | None = run
    while src is not None and (src / "config.json").is_file():
        c = json.loads((src / "config.json").read_text())
        chain.insert(0, (src, c))
        src = Path(c["init_from"]) if c.get("init_from") else None
        if src is not None and src.is_file():  # --init-from RUN/best.weights.h5: that run
            src = src.parent
    return chain


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="the shipped training run (its --init-from chain gives the phases)")
    src.add_argument("--from-card", metavar="DIR", help="rebuild README.md from DIR/card.json and DIR/meta.json only")
    ap.add_argument("--out", default="models")
    ap.add_argument("--val-eval")
    ap.add_argument("--hires-eval")
    ap.add_argument("--xception")
    ap.add_argument("--bench", help="bench/predict.py --json output")
    ap.add_argument("--bench-pipeline", help="bench/pipeline.py --json output")
    ap.add_argument("--latency", help="tests/test_browser.py latency JSON (upload to result in the app)")
    ap.add_argument("--member", action="append", default=[], metavar="RUN",
                    help="another training run to ship beside --run as an ensemble member (repeatable; the members "
                         "share the TTA copies, see boneage.bundle.EnsembleSpec)")
    ap.add_argument("--model-version", help="the bundle's model_version (default: the run's; name an ensemble apart)")
    ap.add_argument("--prior-card", help="card.json of the model the run was fine-tuned from, when its runs are gone: "
                                         "its phases and commands come first")
    a = ap.parse_args(argv)
    if a.from_card:
        d = Path(a.from_card)
        card, meta = json.loads((d / "card.json").read_text()), bundle.read_meta(d).to_dict()
        (d / "README.md").write_text(render_readme(card, meta, d))
        print(f"wrote {d}/README.md from {d}/card.json")
        return 0
    run, out = Path(a.run), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    src_bundle, out_bundle = bundle.Bundle(run), bundle.Bundle(out)
    for f in (bundle.META_FILE, "history.csv", "val_predictions.csv"):
        shutil.copy2(run / f, out / f)
    # Ship the weights without the optimiser state (a third of the size; predictions identical).
    from boneage.model import load_model

    load_model(src_bundle.model_file).save(out_bundle.model_file)
    meta_obj = bundle.read_meta(src_bundle)  # validated: a malformed meta.json stops here, in one line
    members = []
    for m in a.member:
        mrun = Path(m)
        meta_obj = bundle.add_member(out_bundle, meta_obj, mrun)
        name = meta_obj.section(bundle.ENSEMBLE_SECTION)["members"][-1]
        mm = json.loads((mrun / "metrics.json").read_text())
        mchain = [(r, c) for r, c in _phases(mrun) if r not in {r0 for r0, _ in _phases(run)}]
        members.append({"file": name, "run": str(mrun), "val_mae_no_tta": mm.get("mae"), "epochs_run": mm.get("epochs_run"),
                        "train_minutes": round(sum((_load(str(r / "metrics.json")) or {}).get("train_seconds") or 0
                                                   for r, _ in mchain) / 60, 1),
                        "command": [_command(r, c) for r, c in mchain], "sha256": sha256(out_bundle.file(name))})
    if a.model_version:
        import dataclasses

        meta_obj = dataclasses.replace(meta_obj, model_version=a.model_version)
    if members or a.model_version:
        bundle.write_meta(out_bundle, meta_obj)
    meta = meta_obj.to_dict()
    chain = _phases(run)
    cfg = chain[-1][1]
    train_m = json.loads((run / "metrics.json").read_text())
    val_e, hires_e, xc, bench = _load(a.val_eval), _load(a.hires_eval), _load(a.xception), _load(a.bench)
    benchmarks = {k: v for k, v in {"prediction (bench/predict.py)": bench,
                                    "pipeline (bench/pipeline.py)": _load(a.bench_pipeline),
                                    "app upload to result (tests/test_browser.py)": _load(a.latency)}.items() if v}
    if benchmarks:
        (out / "benchmarks.json").write_text(json.dumps(benchmarks, indent=2))
    card = {
        "name": "boneage default model",
        "model_version": meta["model_version"],
        "intended_use": "Research and education: estimating skeletal (bone) age from a left-hand PA radiograph. "
                        "Not a medical device; not for clinical diagnosis or treatment decisions.",
        "architecture": {"type": "Attention-CNN regressor (spatial attention map weighting the last feature maps, sex branch, linear output, MAE loss)",
                         "backbone": meta["backbone"], "input": f"{meta['image_height']}×{meta['image_width']} grayscale + sex",
                         "pretrained": "ImageNet (offline, see WEIGHTS_PROVENANCE.md)" if cfg.get("pretrained") else "none",
                         "trainable_fraction_of_backbone": cfg.get("trainable_fraction")},
        "data": {"source": "RSNA Pediatric Bone Age Challenge 2017 training set, 100×100 thumbnails (train-100px)",
                 "citation": "Halabi SS, Prevedello LM, Kalpathy-Cramer J, et al. The RSNA Pediatric Bone Age Machine Learning Challenge. Radiology 2019;290(2):498-503.",
                 "licence": "non-commercial research and education",
                 "labels": "bone age in months from the clinical report (one reader, Greulich & Pyle), and sex",
                 "split": f"deterministic by id hash: {train_m['n_train']} train / {train_m['n_val']} validation",
                 "limits": ["thumbnails are 100×100 with the aspect ratio squashed to square; fine bone detail is lost",
                            "single-reader labels (inter-reader SD in the RSNA set is several months)",
                            "few children under 4 or over 16 years", "North-American paediatric population 2010s"]},
        "preprocessing": {"pipeline": meta["pipeline"], "pipeline_version": meta.get("pipeline_version")},
        "training": {**{k: cfg[k] for k in ("epochs", "batch_size", "learning_rate", "weight_decay", "seed", "patience")},
                     "epochs_run": train_m["epochs_run"], "best_epoch": train_m["best_epoch"],
                     "train_seconds": train_m["train_seconds"], "train_images_per_second": train_m["train_images_per_second"],
                     "hardware": train_m["hardware"],
                     "command": [_command(src, c) for src, c in chain]},
        "validation_thumbnails_no_tta": train_m,
        "validation_thumbnails_full_path_tta": val_e,
        "hires_40_full_size_path": hires_e,
        "trivial_baseline_mae": train_m.get("trivial_baseline_mae"),
        "attention_xception": xc,
        "benchmarks": benchmarks or None,
        "sha256": {bundle.MODEL_FILE: sha256(out_bundle.model_file), **{m["file"]: m["sha256"] for m in members}},
        "ensemble": members or None,
        "generated": time.strftime("%Y-%m-%d"),
        "not_for_clinical_use": True,
    }
    phases = []
    for src, c in reversed(chain):  # back from the shipped run, as far as phases finished (have metrics)
        mm = _load(str(src / "metrics.json"))
        if mm is None:
            break
        phases.insert(0, {"run": str(src), "epochs_run": mm.get("epochs_run"), "train_seconds": mm.get("train_seconds"),
                          "val_mae": mm.get("mae"), "trainable_fraction": c.get("trainable_fraction"),
                          "learning_rate": c.get("learning_rate"), "augment_strength": c.get("augment_strength", 1.0),
                          "ema_momentum": c.get("ema_momentum", 0.0),
                          "pipeline_version": (_load(str(bundle.Bundle(src).meta_file)) or {}).get("pipeline_version")})
    prior = _load(a.prior_card)
    if prior:
        card["training"]["command"] = prior["training"]["command"] + card["training"]["command"]
        phases = prior["training"]["phases"] + phases
    card["training"]["phases"] = phases
    card["training"]["total_train_minutes"] = round(sum(p["train_seconds"] or 0 for p in phases) / 60, 1)
    (out / "card.json").write_text(json.dumps(card, indent=2))
    (out / "README.md").write_text(render_readme(card, meta, out))
    print(f"wrote {out}/card.json and {out}/README.md")
    return 0


def render_readme(card: dict, meta: dict, bundle_dir: Path | None = None) -> str:
    """The model card as Markdown, from card.json and meta.json (every figure comes from them)."""
    tta = bundle.TTASpec.from_meta(bundle.BundleMeta.from_dict(meta)).copies
    train_m = card["validation_thumbnails_no_tta"]
    val_e, hires_e = card.get("validation_thumbnails_full_path_tta"), card.get("hires_40_full_size_path")
    xc, phases = card.get("attention_xception"), card["training"]["phases"]
    trainable = card["architecture"].get("trainable_fraction_of_backbone")
    gap = None
    if val_e and hires_e and val_e.get("mae") is not None and hires_e.get("mae") is not None:
        gap = hires_e["mae"] - val_e["mae"]
    L = [
        f"# Model card — {meta['model_version']}",
        "",
        "**Research software — not a medical device; not for clinical diagnosis.**",
        "",
        "## What it is",
        f"An attention CNN that reads a hand radiograph (after boneage's preprocessing pipeline) and the child's sex and "
        f"returns bone age in months. Backbone **{meta['backbone']}** (ImageNet-initialised from offline weights, "
        f"{1.0 if trainable is None else trainable:.0%} of its layers fine-tuned in the last phase), a learned spatial attention map that weights the last "
        f"feature maps before pooling, a small dense branch for sex, one linear output; MAE loss. Input "
        f"{meta['image_height']}×{meta['image_width']} grayscale (the hand masked, aligned and cropped by `boneage.pipeline`).",
        "",
        "## Data and its limits",
        f"RSNA Pediatric Bone Age Challenge 2017 training radiographs as **100×100 thumbnails, aspect squashed to square** "
        f"(the only copy available here). Labels: one reader's Greulich–Pyle bone age from the clinical report. Split "
        f"deterministically by id: {train_m['n_train']} train / {train_m['n_val']} validation. The 40 full-size `hires` "
        "radiographs were never used in training and serve as a second check through the full-size path. Thin below 4 "
        "and above 16 years. Cite: Halabi SS et al., *Radiology* 2019;290(2):498–503 (non-commercial research and education).",
        "",
        "## Accuracy (months; measured)",
        "",
        ("`model.keras` alone (the first network): v" if card.get("ensemble") else "V")
        + "alidation thumbnails, cached model inputs, no TTA (from training):",
        "",
        "| metric | value |", "|---|---|", *_metric_rows(train_m),
        f"| trivial baseline (predict the training mean) | {_fmt(train_m.get('trivial_baseline_mae'))} |",
        "",
        f"Validation thumbnails through the exact prediction path (raw file → loader → pipeline → model, {tta}× TTA"
        + (f", {len(card['ensemble']) + 1} networks" if card.get("ensemble") else "") + "):",
        "",
        "| metric | value |", "|---|---|", *_metric_rows(val_e),
        "",
        "The 40 full-size `hires` radiographs (≈800×1040, segmented) through the same path:",
        "",
        "| metric | value |", "|---|---|", *_metric_rows(hires_e),
        "",
        (f"Full-size minus thumbnail MAE: **{gap:+.2f} months** (target: within 1.5"
         + ("; here the full-size radiographs score *better*, not worse" if gap < -1.5 else "")
         + f"). With only 40 images the hires MAE has a standard error of roughly "
         f"±{(hires_e.get('rmse') or 0) / 40 ** 0.5:.1f} months." if gap is not None else ""),
        "",
        "## The study's Attention-Xception",
    ]
    if xc:
        L += [f"Trained with `scripts/train_attention_xception.py` ({xc.get('method', '')}). Validation MAE "
              f"**{_fmt(xc.get('mae'))}** months on the same split (RMSE {_fmt(xc.get('rmse'))}, bias {_fmt(xc.get('bias'))}); "
              + (f"{xc.get('epochs_run')} epochs (best: epoch {xc.get('best_epoch', xc.get('epochs_run'))}"
                 + ("; still improving when the run ended" if xc.get("best_epoch") == xc.get("epochs_run") else "")
                 + f"); feature caching {_fmt(xc.get('feature_cache_seconds'), 0)} s, training "
                 f"{_fmt(xc.get('train_seconds'), 0)} s on this CPU. Measured like the first table above (cached "
                 "inputs, no TTA), so it compares with that figure; the study reports 9.43 months for it on its own "
                 "full-resolution data, trained end to end. "
                 if xc.get("train_seconds") else
                 f"only {xc.get('epochs_run')} epochs of exit-flow and head training ({xc.get('stopped_early', 'stopped early')}), "
                 "so this is an under-trained Attention-Xception, not the architecture's potential. ") +
              "Not the default: too slow to fine-tune end to end on 2 CPU cores (≈6–14 images/s at 160×128), and heavier at inference."]
    else:
        L += ["Not measured in this build."]
    commands = card["training"]["command"]
    L += ["", "## Training",
          f"{len(commands)} phase{'s' if len(commands) > 1 else ''}, run in this order; each later phase starts from the "
          "weights of the one before (`--init-from`). Reproduce the model by running the commands in turn.", ""]
    for i, cmd in enumerate(commands):
        p = phases[i - len(commands) + len(phases)] if i >= len(commands) - len(phases) else None
        what = (f"{p['epochs_run']} epochs, {p['trainable_fraction']:.0%} of the backbone trainable, peak learning rate "
                f"{p['learning_rate']}, augmentation ×{p['augment_strength']}"
                + (f", weight EMA {p['ema_momentum']}" if p["ema_momentum"] else "")
                + (f", inputs from pipeline version {p['pipeline_version']}" if p.get("pipeline_version") else "")
                + f"; {(p['train_seconds'] or 0) / 60:.0f} min; validation MAE {_fmt(p['val_mae'])} months (no TTA)"
                ) if p else "not measured"
        L += [f"{i + 1}. **Phase {i + 1}**: {what}.", "", "   ```bash",
              textwrap.indent(command_lines(cmd), "   "), "   ```", ""]
    L += [f"- in all {card['training']['total_train_minutes']:.0f} min of training on {train_m['hardware']} (shared with other work)",
          "- AdamW, cosine LR with warm-up, batch 32; augmentation at ×1: flips, ±15° rotation, ±6 % shift, ±10 % zoom, "
          "contrast, brightness, gamma, noise (later phases scale every range by the factor above, so the model fits closer)",
          "", "## Prediction", "- uncertainty_months = √(validation residual SD² + TTA SD²): one standard deviation, mostly model error",
          f"- validation residual SD: {meta.get('val_residual_sd_months', 0):.2f} months"]
    if card.get("ensemble"):
        ens = card["ensemble"]
        L += ["", "## Ensemble",
              f"{len(ens) + 1} networks: `{bundle.MODEL_FILE}` (the training above) and {len(ens)} more, each with its own training below. "
              f"They share the TTA copies of an image — copy *i* is read by network *i* mod {len(ens) + 1}, so copy 0 "
              "(the image itself, whose attention map is drawn and whose features the acceptance check compares) is "
              "always read by the first — so the ensemble reads as many copies as one network would (a member working "
              "at a larger input size costs more per copy: see the speed table).", ""]
        for m in ens:
            L += [f"- `{m['file']}`: validation MAE {_fmt(m['val_mae_no_tta'])} months alone (no TTA), "
                  + (f"{m['epochs_run']} epochs, " if m.get("epochs_run") else "")
                  + f"{m['train_minutes']:.0f} min of training beyond the shared phases"
                  + (f"; {m['note']}" if m.get("note") else "") + ":", "", "  ```bash",
                  *[textwrap.indent(command_lines(c), "  ") for c in m["command"]], "  ```", ""]
    int8 = bundle.Int8Spec.from_meta(bundle.BundleMeta.from_dict(meta))
    if int8:
        L += ["", "## int8 graphs", int8.why, ""]
        for net, f, sha in int8.graphs:
            L += [f"- `{f}`: `{net}` on int8 kernels, for the weights with sha256 `{sha}` only; made by", "", "  ```bash",
                  f"  python scripts/quantize_member.py --bundle models --network {net}", "  ```"]
    if card.get("benchmarks"):
        L += ["", "## Speed (measured)", "", benchmarks.markdown(card["benchmarks"]).rstrip()]
    L += ["", *localisation_section(bundle_dir or MODELS_DIR), "", *ablation_section(bundle_dir or MODELS_DIR)]
    L += ["", *output_calibration_section(bundle_dir or MODELS_DIR)]
    L += ["", *uncertainty_section(bundle_dir or MODELS_DIR)]
    L += ["", "## Files", *[f"- `{f}` sha256 `{h}`" for f, h in card["sha256"].items()],
          "- `meta.json`: what `Predictor` needs (pipeline parameters, label statistics, residual SD)",
          "- `card.json`: this card as data; `history.csv`: training curves; `val_predictions.csv`: validation predictions",
          "", "## Not for clinical use",
          "Errors of 1–2 years occur. The model has seen only one hospital system's children, only thumbnails, and one reader's "
          "labels. Never use it to diagnose or to decide treatment."]
    return "\n".join(L) + "\n"


def localisation_section(d: Path) -> list[str]:
    """Share of plausible hand masks (``scripts/localisation_sweep.py`` → ``localisation.json``)."""
    loc = _load(str(d / "localisation.json"))
    if not loc:
        return []
    L = ["## Hand localisation (measured)",
         f"Pipeline version {loc['pipeline_version']}: a mask is *plausible* when a hand was found and alignment turned it by "
         f"at most {loc['max_turn_deg']:.0f}° (RSNA films are taken fingers up). `python scripts/localisation_sweep.py`.", "",
         "| images | n | plausible | no hand | turned > 30° |", "|---|---|---|---|---|"]
    for key, label in (("thumbnails", "all thumbnails"), ("thumbnails_ids_below_5000", "thumbnails, ids below 5000 (film-heavy)"),
                       ("hires", "full-size `hires`"), ("unlabelled_films", "raw films (`unlabelled-radiographs`)")):
        v = loc.get(key)
        if v:
            L.append(f"| {label} | {v['n']} | {v['plausible']:.1%} | {v['no_hand']} | {v['turned_over_30_deg']} |")
    m = loc["thumbnails"]["mask_methods"]
    L += ["", "Which mask won on the thumbnails: " + "; ".join(f"{k} {n}" for k, n in m.items()) + "."]
    return L


def ablation_section(d: Path) -> list[str]:
    """One row per lever (``scripts/ablation.py`` → ``ablation.json``)."""
    ab = _load(str(d / "ablation.json"))
    if not ab:
        return []
    rows = ab["rows"]
    bands = list(rows[0]["bias_by_band"])
    L = ["## Ablation (measured)", f"{ab['measured_on'][:1].upper() + ab['measured_on'][1:]}; months. `python scripts/ablation.py` (see its docstring).", "",
         "| change | pipeline | MAE | RMSE | bias | " + " | ".join(f"bias {b}" for b in bands) + " | training cost |",
         "|---|---|---|---|---|" + "---|" * len(bands) + "---|"]
    for r in rows:
        L.append(f"| {r['row']} | v{r['pipeline_version']} | {r['mae']:.2f} | {r['rmse']:.2f} | {r['bias']:+.2f} | "
                 + " | ".join("" if r["bias_by_band"].get(b) is None else f"{r['bias_by_band'][b]:+.1f}" for b in bands)
                 + f" | {r['training_cost']} |")
    if ab.get("note"):
        L += ["", ab["note"]]
    return L


def output_calibration_section(d: Path) -> list[str]:
    """The output calibration tried on the shipped model (``scripts/calibrate_output.py`` →
    ``output_calibration.json``), cross-fitted, and whether the bundle applies it."""
    oc = _load(str(d / "output_calibration.json"))
    if not oc:
        return []
    rows = oc["rows"]
    bands = list(next(iter(rows.values()))["bias_by_band"])
    applied = "applied by `Predictor` (meta.json section `output_calibration`)" if oc.get("shipped") else \
        "not applied: it did not lower the cross-fitted MAE by the 0.05-month margin a calibration must earn"
    L = ["## Output calibration (measured)",
         f"A monotone map per sex of the true age on the predicted one (`boneage.calibration`), fitted on one half of "
         f"the validation ids and measured on the other, and the other way round: {oc['measured_on']}; months. "
         f"Best: {oc['best']}, cross-fitted gain {oc['cross_fitted_gain_months']:+.3f} months — {applied}. "
         "`python scripts/calibrate_output.py val.csv --bundle models [--write]`.", "",
         "| | MAE | RMSE | bias | " + " | ".join(f"bias {b}" for b in bands) + " |",
         "|---|---|---|---|" + "---|" * len(bands)]
    for name, r in rows.items():
        L.append(f"| {name} | {r['mae']:.2f} | {r['rmse']:.2f} | {r['bias']:+.2f} | "
                 + " | ".join("" if r["bias_by_band"].get(b) is None else f"{r['bias_by_band'][b]:+.1f}" for b in bands)
                 + " |")
    return L


if __name__ == "__main__":
    sys.exit(main())
