#!/usr/bin/env bash
# Issue #9 on a lent GPU machine (the `device` tool): train ensemble members there in one call,
# bring them back through $OUT, measure them here on the CPU path before anything ships.
#
# The machine has PyTorch, OpenCV, pandas, h5py and rich but no TensorFlow and no Keras, and no
# copy of the thumbnails; it receives the working tree (≈ 35 MiB) plus what `carry` names, 64 MiB
# in all, and gives back at most 8 files of 16 MiB. Hence, in three steps:
#
#   1. here:   scripts/train_gpu.sh pack
#        gpu/inputs.npz  the pipeline's outputs for every thumbnail, WebP q88 (boneage.packed, ≈ 23 MiB)
#        gpu/wheels/     keras and the two packages it needs there (namex, optree), for Python 3.12
#        and prints what would travel (must stay under 64 MiB).
#   2. there:  run(command="scripts/train_gpu.sh run", carry=["gpu"], timeout_s=600)
#        KERAS_BACKEND=torch; each member below is `boneage train --data gpu/inputs.npz`, stopped by
#        --max-minutes before the call's limit, all at once; each one's model.keras and log (metrics appended) come back.
#   3. here:   scripts/train_gpu.sh check DIR   (DIR = the run's files_at)
#        validation MAE of each member alone and beside the shipped pair (scripts/ablation.py, cached
#        inputs, no TTA). Ship a member only through `make_model_card.py --member`, the acceptance
#        and interval recalibration and `boneage evaluate` (README, "Retraining").
#
# Two calls, for members from ImageNet (PLAN=imagenet): tree + gpu/ leave no room for the backbone's
# 18 MiB of weights, so the first call carries gpu/ and returns at once, and the second, made
# within the machine's 30 s warm window (ignored files already there are kept), carries the weights:
#   run(command="true", carry=["gpu"], timeout_s=60)
#   run(command="BATCH=auto PLAN=imagenet scripts/train_gpu.sh run", carry=[".cache/weights/efficientnet_lite0_imagenet.npz"], timeout_s=570)
# PLAN=shipped (two members from the shipped weights), imagenet (two from ImageNet) or mixed (all four).
# imagenet first: everything continued from the shipped weights since (GPU continuations, more epochs,
# siblings, distillation; model card rows 7, 22-23, 25-34) lands within 0.05 months of the pair.
#
# Tested here on a tiny subset under KERAS_BACKEND=jax with TensorFlow's import blocked:
#   LIMIT=96 scripts/train_gpu.sh pack && EPOCHS=1 MINUTES=1 PYTHON=... KERAS_BACKEND=jax scripts/train_gpu.sh run
set -euo pipefail
cd "$(dirname "$0")/.."

members() {
  # name, then `boneage train` options. EPOCHS/MINUTES shrink them for a smoke test. All members of a
  # plan train at once (one process each): one EfficientNet-Lite0 in eager torch leaves an H200 mostly
  # idle, and the call's limit is wall-clock. --max-minutes also fits each cosine schedule to the
  # time (boneage.train.EpochReport), so a member stopped by the clock ends at a low rate.
  # BATCH (default 64; the learning rates scale by its square root): larger batches mean fewer eager
  # steps, which pays where each step's fixed cost (kernel launches) dominates. BATCH=auto lets
  # `run` time 64, 256 and 512 first (scripts/gpu_probe.py --quick, ≈ 30 s) and climb to a larger
  # size only for ≥ 1.5× the images per second.
  local e=${EPOCHS:-120} m=${MINUTES:-7} b=${BATCH:-64}
  lr() { awk -v l="$1" -v b="$b" 'BEGIN { printf "%.3g", l * sqrt(b / 64) }'; }  # square-root scaling from 64
  local common="--epochs $e --max-minutes $m --batch-size $b --ema 0.998 --age-balance 0.5 --patience 100 --trainable-fraction 1.0"
  case "${PLAN:-shipped}" in
  imagenet|mixed)
    # From ImageNet, apart from the shipped weights (more diverse members). The backbone's weights
    # (18 MiB) do not fit beside gpu/ in one call: see "Two calls" above.
    echo "imnet160 $common --lr $(lr 1e-3) --warmup-epochs 2 --augment-strength 1.0 --seed 11"
    echo "imnet224 $common --input-size 160x128 --image-size 224x176 --lr $(lr 1e-3) --warmup-epochs 2 --augment-strength 1.0 --seed 12"
    ;;
  esac
  case "${PLAN:-shipped}" in
  shipped|mixed)
    # From the shipped networks' weights (in the tree, so nothing more travels), each at its own size.
    echo "long160 --init-from models/model.keras $common --lr $(lr 3e-4) --warmup-epochs 1 --augment-strength 0.6 --seed 42"
    echo "long224 --init-from models/member-1.keras --input-size 160x128 --image-size 224x176 $common --lr $(lr 3e-4) --warmup-epochs 1 --augment-strength 0.6 --seed 43"
    ;;
  esac
}

with_keras() {
  # keras from the carried wheels where the machine has none; the torch backend.
  if ! "$PY" -c "import keras" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site gpu/wheels/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} KERAS_BACKEND=${KERAS_BACKEND:-torch} PYTHONUNBUFFERED=1
}

case "${1:-}" in
probe)
  # Where a training step's time goes there (scripts/gpu_probe.py); carry gpu/ for the wheels.
  PY=${PYTHON:-python3}
  with_keras
  command -v nvidia-smi >/dev/null && nvidia-smi -L || true
  "$PY" scripts/gpu_probe.py --seconds "${SECONDS_PER_TEST:-6}" ${OUT:+--out "$OUT/probe.json"}
  ;;
pack)
  PY=${PYTHON:-.venv/bin/python}
  DATA=${DATA:-../shared/data/rsna-bone-age/train-100px}
  grep -qx '/gpu/' .gitignore || { echo "gpu/ must be git-ignored (.gitignore)"; exit 2; }
  "$PY" scripts/pack_inputs.py --data "$DATA" --out gpu/inputs.npz ${LIMIT:+--limit "$LIMIT"}
  rm -rf gpu/wheels && mkdir -p gpu/wheels
  keras=$(grep -o '^keras==[0-9.]*' requirements.txt)
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d gpu/wheels "$keras" namex optree
  tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
  extra=$(git ls-files -z --others --exclude-standard | xargs -0 -r du -cb 2>/dev/null | tail -1 | cut -f1)
  carried=$(du -sb gpu | cut -f1)
  total=$(( tree + ${extra:-0} + carried ))
  "$PY" -c "import sys; t, u, g = (int(v) / 2**20 for v in sys.argv[1:]); print(f'would travel: tree {t:.1f} MiB + untracked {u:.1f} MiB + gpu/ {g:.1f} MiB = {t + u + g:.1f} MiB (limit 64)')" \
    "$tree" "${extra:-0}" "$carried"
  [ "$total" -lt $(( 64 * 1048576 )) ] || { echo "over the 64 MiB a call carries"; exit 1; }
  ;;
run)
  [ -f gpu/inputs.npz ] || { echo "gpu/inputs.npz missing: scripts/train_gpu.sh pack, then carry gpu"; exit 2; }
  if [ "${PLAN:-shipped}" = imagenet ] && [ ! -f .cache/weights/efficientnet_lite0_imagenet.npz ]; then
    echo "PLAN=imagenet needs .cache/weights/efficientnet_lite0_imagenet.npz (boneage fetch-weights here, carried in the second call)"; exit 2
  fi
  PY=${PYTHON:-python3}
  OUT=${OUT:-runs/gpu_out}
  mkdir -p "$OUT" /tmp/gpu_runs
  with_keras
  command -v nvidia-smi >/dev/null && nvidia-smi -L || true
  # Refuse to spend the lease training on the CPU: the first run there (2026-11-29) went at CPU pace.
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee /dev/stderr | grep -q "cuda True" \
    || [ "${ALLOW_CPU:-0}" = 1 ] || { echo "torch sees no GPU here: not training (ALLOW_CPU=1 to run anyway)"; exit 3; }
  "$PY" -c "import keras; from keras.src.backend.torch.core import get_device; print('keras', keras.__version__, 'backend', keras.backend.backend(), 'device', get_device())"
  if [ "${BATCH:-64}" = auto ]; then
    "$PY" scripts/gpu_probe.py --quick --seconds 4 ${PROBE_ARGS:-} --out /tmp/probe.json  # not in $OUT: 8 files come back
    BATCH=$("$PY" -c "import json, sys; print(json.load(open(sys.argv[1]))['best_batch'])" /tmp/probe.json)
    echo "BATCH=$BATCH (scripts/gpu_probe.py --quick)"
  fi
  n=$(members | wc -l)
  threads=$(( $(nproc) / n > 0 ? $(nproc) / n : 1 ))
  while read -r name opts; do
    echo "=== $name: boneage train $opts"
    # shellcheck disable=SC2086
    ( OMP_NUM_THREADS=$threads "$PY" -m boneage.cli train --data gpu/inputs.npz --out "/tmp/gpu_runs/$name" $opts > "$OUT/$name.log" 2>&1 \
        || echo "$name failed (see $name.log)"
      # At most 8 files come back (64 MiB in all): each member's model and its log, metrics appended.
      [ -f "/tmp/gpu_runs/$name/model.keras" ] && cp "/tmp/gpu_runs/$name/model.keras" "$OUT/$name.keras"
      [ -f "/tmp/gpu_runs/$name/metrics.json" ] && { echo "=== metrics.json"; cat "/tmp/gpu_runs/$name/metrics.json"; } >> "$OUT/$name.log"
      echo "=== $name done: $(tail -1 "$OUT/$name.log")" ) &
  done < <(members)
  wait
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv || true
  for f in "$OUT"/*.log; do echo "--- $f"; grep -E "^epoch|stopping|fitted|val MAE|error|Error" "$f" | tail -8; done
  ls -la "$OUT"
  ;;
check)
  DIR=${2:?usage: scripts/train_gpu.sh check DIR (the folder the run brought back)}
  PY=${PYTHON:-.venv/bin/python}
  rows=(--row "shipped pair (cached inputs, no TTA)" "models,models/member-1.keras")
  for k in "$DIR"/*.keras; do
    n=$(basename "$k" .keras)
    rows+=(--row "gpu $n alone" "$k" --row "gpu $n beside the pair" "models,models/member-1.keras,$k")
  done
  "$PY" scripts/ablation.py "${rows[@]}" --out "${OUT_JSON:-runs/gpu_check.json}"
  ;;
*)
  sed -n '2,28p' "$0"; exit 2 ;;
esac
