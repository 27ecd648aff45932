#!/usr/bin/env python
"""Pack the training data's model inputs into one small file (``boneage.packed``) for the GPU machine.

The pipeline runs here, where the thumbnails are (or its on-disk cache is read), with the
parameters ``boneage train`` uses by default; the file carries them and ``PIPELINE_VERSION``, so
``boneage train --data gpu/inputs.npz`` there trains on exactly these inputs (WebP at quality 88:
≈ 23 MiB for the 11,322 thumbnails; see :mod:`boneage.packed` for why lossy and how close).

    python scripts/pack_inputs.py --data ../shared/data/rsna-bone-age/train-100px --out gpu/inputs.npz [--limit N]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from boneage.data import build_cache  # noqa: E402
from boneage.packed import DEFAULT_QUALITY, load_packed, pack_inputs  # noqa: E402
from boneage.train import TrainConfig  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="RSNA-layout folder (labels.csv and images)")
    ap.add_argument("--out", default="gpu/inputs.npz")
    ap.add_argument("--limit", type=int, default=None, help="first N labelled images only (a smoke test)")
    ap.add_argument("--quality", type=int, default=DEFAULT_QUALITY, help="WebP quality (1-100)")
    a = ap.parse_args(argv)

    params = TrainConfig(data=a.data, out="unused").pipeline_params()  # what boneage train asks of the file
    prep = build_cache(a.data, params, limit=a.limit)
    info = pack_inputs(prep.images, prep.labels, params, a.out, quality=a.quality)
    back = load_packed(a.out, params)
    ok = prep.labels["ok"].to_numpy(bool)
    err = abs(back.images[ok].astype(int) - prep.images[ok].astype(int)).mean() if ok.any() else 0.0
    print(f"{a.out}: {info['images']} images, {info['bytes'] / 2**20:.1f} MiB ({info['bytes_per_image']} B an image), "
          f"mean absolute difference from the cached inputs {err:.2f} grey levels of 255")
    return 0


if __name__ == "__main__":
    sys.exit(main())
