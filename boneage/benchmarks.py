"""The model bundle's ``benchmarks.json`` as tables a person reads: labels in words, units, sensible rounding.

Why: the bench scripts write machine keys (``load_ms_median: 11.950626999805536``) and the Model
page showed them as they were. The keys follow one convention (``<what>_<unit>[_<statistic>]``:
``total_ms_p90``, ``end_to_end_ms_tta8``, ``batch64_model_images_per_s``), so they are translated
by rule here, once, for the Model page and the model card (``scripts/make_model_card.py``);
a key the rules do not know still shows, with its name in words and no unit.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# Trailing key parts that are units (longest first), and how a reader writes them.
_UNITS = (("images_per_s", "images/s"), ("over_xception", "× one Xception-299 forward"), ("ms", "ms"), ("s", "s"))
# Key parts that qualify the figure.
_QUALIFIERS = {"median": "median", "p90": "90th percentile", "no_tta": "no TTA", "1min": "1 min", "by_round": "each round"}
# Words a reader expects instead of the key's spelling.
_WORDS = {"xception299": "Xception-299", "end to end": "end to end", "loadavg": "load average",
          "load avg": "load average", "cpu count": "CPUs", "cpus": "CPUs", "opencv": "OpenCV", "png": "PNG",
          "dicom": "DICOM", "tensorflow": "TensorFlow", "png again": "PNG, again", "png second": "another PNG", "tta": "TTA", "train": "training"}


@dataclass(frozen=True)
class Figure:
    """One measured figure: what it is, its value as text (unit included)."""

    label: str
    value: str


@dataclass(frozen=True)
class Table:
    """Figures measured per case (image kind, file format): one row per case, one column per figure."""

    title: str
    columns: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Section:
    """One benchmark script's results: single figures, then any per-case tables."""

    title: str
    figures: list[Figure]
    tables: list[Table]


def describe_key(key: str) -> tuple[str, str]:
    """``(label, unit)`` for a benchmark key: ``total_ms_p90`` → ``("total, 90th percentile", "ms")``."""
    k = key.lower()
    unit = ""
    quals = []
    for q, words in _QUALIFIERS.items():  # qualifiers may sit after the unit (total_ms_p90, load_avg_1min)
        if k.endswith("_" + q):
            k, quals = k[: -len(q) - 1], [words]
            break
    else:
        m = re.match(r"(.*)_tta(\d+)$", k)  # the bundle's TTA count (boneage.bundle.TTASpec): end_to_end_ms_tta6
        if m:
            k, quals = m.group(1), [f"{m.group(2)}× TTA"]
    for suffix, words in _UNITS:
        if k == suffix or k.endswith("_" + suffix):
            k, unit = k[: -len(suffix)].rstrip("_"), words
            break
    m = re.match(r"batch(\d+)_(.*)", k)
    if m:
        k, quals = m.group(2), [f"batches of {m.group(1)}", *quals]
    label = k.replace("_", " ").strip()
    label = _WORDS.get(label, label)
    label = " ".join(_WORDS.get(w, w) for w in label.split(" ")) if label not in _WORDS.values() else label
    if unit.startswith("×") and label:
        label += " ÷ one Xception-299 forward"
        unit = "×"
    return (label + (", " + ", ".join(quals) if quals else "")).strip(", ") or key, unit


def format_value(value, unit: str = "") -> str:
    """A value with its unit, rounded to what the measurement supports (3 significant figures at most)."""
    if isinstance(value, bool) or value is None:
        text = "—" if value is None else ("yes" if value else "no")
    elif isinstance(value, (int, float)):
        v = float(value)
        if v.is_integer() and abs(v) >= 10:
            text = f"{int(v)}"
        elif abs(v) >= 100:
            text = f"{v:.0f}"
        elif abs(v) >= 10:
            text = f"{v:.1f}"
        else:
            text = f"{v:.2f}".rstrip("0").rstrip(".") if abs(v) >= 1 else f"{v:.2g}" if v else "0"
    elif isinstance(value, (list, tuple)):
        if unit == "×":  # ratios read one by one: 0.55×, 0.51×
            return ", ".join(format_value(v, unit) for v in value)
        return ", ".join(format_value(v) for v in value) + (f" {unit}" if unit else "")
    else:
        text = str(value)
    if not unit or text == "—":
        return text
    return f"{text}{unit}" if unit == "×" else f"{text} {unit}"


def _title(key: str) -> str:
    label, _ = describe_key(key)
    return label[:1].upper() + label[1:]


def _table(title: str, cases: dict) -> Table:
    keys = list(dict.fromkeys(k for case in cases.values() for k in case))
    described = {k: describe_key(k) for k in keys}
    columns = ["case", *[f"{lab} ({unit})" if unit else lab for lab, unit in described.values()]]
    rows = [[_title(str(name)), *[format_value(case.get(k)) for k in keys]] for name, case in cases.items()]
    return Table(title, columns, rows)


def sections(benchmarks: dict) -> list[Section]:
    """Every benchmark in ``benchmarks.json`` (``{script title: results}``) as readable sections."""
    out = []
    for title, results in (benchmarks or {}).items():
        title = str(title)[:1].upper() + str(title)[1:]
        if not isinstance(results, dict):
            out.append(Section(title, [Figure("value", format_value(results))], []))
            continue
        figures, tables = [], []
        cases = {k: v for k, v in results.items() if isinstance(v, dict) and all(isinstance(c, dict) for c in v.values())}
        per_case = {k: v for k, v in results.items() if isinstance(v, dict) and k not in cases}
        for key, value in results.items():
            if key in cases:
                tables.append(_table(_title(key) if key != "rows" else "Per image kind", value))
            elif key not in per_case:
                label, unit = describe_key(key)
                figures.append(Figure(label[:1].upper() + label[1:], format_value(value, unit)))
        if per_case:
            tables.append(_table("Per case", per_case))
        out.append(Section(title, figures, tables))
    return out


def markdown(benchmarks: dict) -> str:
    """The sections as Markdown tables (for the model card)."""
    lines: list[str] = []
    for s in sections(benchmarks):
        lines += [f"**{s.title}**", ""]
        if s.figures:
            lines += ["| figure | value |", "|---|---|", *[f"| {f.label} | {f.value} |" for f in s.figures], ""]
        for t in s.tables:
            lines += [f"{t.title}:", "", "| " + " | ".join(t.columns) + " |", "|" + "---|" * len(t.columns),
                      *["| " + " | ".join(r) + " |" for r in t.rows], ""]
    return "\n".join(lines).rstrip() + "\n"
