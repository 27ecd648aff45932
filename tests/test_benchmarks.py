"""benchmarks.json as readable tables: words and units from the keys, rounding a reader can take in."""
from __future__ import annotations

import json
import re

import pytest

from boneage import benchmarks as B
from boneage.paths import MODELS_DIR


@pytest.mark.parametrize("key, label, unit", [
    ("load_ms_median", "load, median", "ms"),
    ("total_ms_p90", "total, 90th percentile", "ms"),
    ("end_to_end_ms_tta8", "end to end, 8× TTA", "ms"),
    ("model_only_ms_tta6", "model only, 6× TTA", "ms"),
    ("batch64_model_images_per_s", "model, batches of 64", "images/s"),
    ("end_to_end_over_xception", "end to end ÷ one Xception-299 forward", "×"),
    ("end_to_end_over_xception_by_round", "end to end ÷ one Xception-299 forward, each round", "×"),
    ("upload_to_result_s", "upload to result", "s"),
    ("load_avg_1min", "load average, 1 min", ""),
    ("something_new", "something new", ""),  # unknown keys still show, in words
])
def test_keys_read_as_words_with_units(key, label, unit):
    assert B.describe_key(key) == (label, unit)


@pytest.mark.parametrize("value, unit, text", [
    (11.950626999805536, "ms", "12.0 ms"), (0.750727999729861, "ms", "0.75 ms"), (128.4175855007561, "ms", "128 ms"),
    (240.3, "images/s", "240 images/s"), (1.94, "×", "1.94×"), (40, "", "40"), (2.0, "s", "2 s"),
    ([0.9794921875, 0.986328125], "", "0.98, 0.99"), ([0.512, 0.553], "×", "0.51×, 0.55×"), (None, "ms", "—"), ("800x1040", "", "800x1040"),
])
def test_values_rounded_with_unit(value, unit, text):
    assert B.format_value(value, unit) == text


def test_shipped_benchmarks_have_no_raw_numbers():
    path = MODELS_DIR / "benchmarks.json"
    if not path.is_file():
        pytest.skip("no benchmarks.json in models/")
    data = json.loads(path.read_text())
    secs = B.sections(data)
    assert [s.title for s in secs] == [t[:1].upper() + t[1:] for t in data]
    cells = [f.value for s in secs for f in s.figures] + [c for s in secs for t in s.tables for r in t.rows for c in r]
    assert cells and not [c for c in cells if re.search(r"\d\.\d{4,}", c)], "unrounded figures"
    assert not [f.label for s in secs for f in s.figures if "_" in f.label], "machine keys left"
    md = B.markdown(data)
    bench = data["prediction (bench/predict.py)"]
    key = next(k for k in bench if re.fullmatch(r"end_to_end_ms_tta\d+", k))  # the bundle's TTA count
    ms, n = bench[key], key.rsplit("tta", 1)[1]  # rounded to 3 significant figures, with its unit
    assert f"| End to end, {n}× TTA | {ms:.3g} ms |" in md and "total, 90th percentile (ms)" in md
