#!/usr/bin/env python
"""The model card's "knowing when not to answer" section, from the bundle's measured files only.

Reads ``acceptance.json`` (scripts/calibrate_acceptance.py) and ``intervals.json``
(scripts/calibrate_intervals.py) and writes the section between the markers in the card
(``models/README.md``), or appends it; ``make_model_card.py`` includes the same lines.

    python scripts/card_uncertainty.py --bundle models --readme README.md
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BEGIN, END = "<!-- acceptance-and-intervals:begin -->", "<!-- acceptance-and-intervals:end -->"
LABELS = {
    "rsna_thumbnails_val_holdout": "RSNA thumbnails, validation ids held out from every threshold",
    "rsna_thumbnails_val_calibration": "RSNA thumbnails, validation ids that set the model-level thresholds",
    "rsna_thumbnails_train": "RSNA thumbnails, training ids (image/pipeline thresholds set here; no TTA-spread rule)",
    "rsna_thumbnails_all": "RSNA thumbnails, all measured",
    "rsna_fullsize": "RSNA full-size radiographs (`hires`)",
    "raw_films": "unlabelled raw films (grey surround, markers)",
}


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def section(bundle: Path) -> list[str]:
    acc = _read(bundle / "acceptance.json")
    itv = _read(bundle / "intervals.json")
    if not acc and not itv:
        return []
    L = [BEGIN, "## Knowing when not to answer", ""]
    if acc:
        m = acc["measured"]
        L += ["### Acceptance check (`boneage.acceptance`)",
              "Before any bone age, the image must look like the hand radiographs the model was trained on: image "
              "(colour, contrast, noise, fine edges), hand outline (found, area, solidity, gaps between digits, "
              "elongation) and the model's own pooled features (Mahalanobis distance in the top "
              f"{acc['feature_space']['components']} principal axes of {acc['feature_space']['n']} training thumbnails, "
              "the remainder outside them, and TTA disagreement), plus their combination (the four largest tail surprises "
              "summed). Thresholds come from real hand radiographs only: a single score refuses only beyond every value "
              "seen among the training thumbnails and the validation calibration half (model scores: the calibration "
              f"half); the combined score at its {acc['quantiles'].get('atypicality_on_val_calibration_half', '—')} "
              "quantile (out-of-fold), the first step that kept ≥ 99 % of the calibration half. Measured with "
              "`scripts/calibrate_acceptance.py` (gather, then fit; a sweep stopped early uses the images it reached, "
              "counted below):", "",
              "| real hand radiographs | n | accepted |", "|---|---:|---:|"]
        for k, r in m["positives"].items():
            L.append(f"| {LABELS.get(k, k)} | {r['n'] - r['unreadable']} | {_pct(r['accepted_rate'])} |")
        L += ["", "| not a hand radiograph (kind; built here, see `boneage/negatives.py`) | n held out | refused, held out "
              "| n all | refused, all | commonest first reason |", "|---|---:|---:|---:|---:|---|"]
        for k, r in m["negatives"].items():
            h, a = r["held_out"], r["all"]
            top = max(a["first_failed_rule"], key=a["first_failed_rule"].get) if a["first_failed_rule"] else "—"
            ref = (lambda x: None if x["accepted_rate"] is None else 1 - x["accepted_rate"])  # noqa: E731
            L.append(f"| {k} | {h['n'] - h['unreadable']} | {_pct(ref(h))} | {a['n'] - a['unreadable']} | "
                     f"{_pct(ref(a))} | {top} |")
        held_pos = m["positives"].get("rsna_thumbnails_val_holdout", {}).get("accepted_rate")
        L += ["", f"Targets: ≥ 99 % of real hand radiographs accepted — held-out validation thumbnails "
              f"**{_pct(held_pos)}**, full-size and raw films as measured above; ≥ 90 % of other images refused — "
              f"held-out negatives **{_pct(m['negatives_held_out_refused_rate'])}**. Where a figure is under its "
              "target it is reported, not tuned away.", ""]
        L += ["", f"All held-out negatives: **{_pct(m['negatives_held_out_refused_rate'])} refused**. Negatives are "
              "renderings and photographs made here, not real radiographs of other body parts: expect lower refusal "
              "rates on real knee or chest films, and report any that pass.", ""]
    if itv:
        r = itv["verified_cross_fit"]
        L += ["### 90 % intervals (`boneage.intervals`)",
              f"Split-conformal on {itv.get('calibrated_on', 'validation predictions')}, per predicted age band × sex, "
              "scaled by √(σ² + TTA SD²), asymmetric (5 % and 95 % conformal quantiles). Coverage measured by "
              f"{r['folds']}-fold cross-fitting (each fold's table fitted on the other folds): "
              f"**{_pct(r['coverage'])}** overall, mean width {r['mean_width_months']:.1f} months.", "",
              "| true age band | n | coverage | mean width (months) |", "|---|---:|---:|---:|"]
        for k, b in r["by_true_age_band"].items():
            L.append(f"| {k} | {b['n']} | {_pct(b['coverage'])} | {b['mean_width_months']:.1f} |")
        for k, b in r["by_sex"].items():
            L.append(f"| {'boys' if k == 'M' else 'girls'} (all ages) | {b['n']} | {_pct(b['coverage'])} | "
                     f"{b['mean_width_months']:.1f} |")
        L.append("")
    L.append(END)
    return L


def _read(p: Path) -> dict | None:
    return json.loads(p.read_text()) if p.is_file() else None


def write_block(path: Path, block: str, before: str = "## Files") -> None:
    """Replace the marked block in ``path``, or insert it before the ``before`` heading (else append)."""
    text = path.read_text() if path.is_file() else ""
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    elif before in text:
        text = text.replace(before, block + "\n\n" + before, 1)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", default="models")
    ap.add_argument("--readme", help="also write the block into this file (the project README), before "
                                     "its '## Clinical reading' heading")
    a = ap.parse_args(argv)
    bundle = Path(a.bundle)
    block = "\n".join(section(bundle))
    write_block(bundle / "README.md", block)
    if a.readme:
        readme_block = block.replace("\n### ", "\n#### ").replace("## Knowing when not to answer",
                                                                  "### Measured: acceptance check and 90 % intervals")
        write_block(Path(a.readme), readme_block, before="## Clinical reading")
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
