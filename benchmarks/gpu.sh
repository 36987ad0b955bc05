#!/usr/bin/env bash
# GPU plan: on a machine with one CUDA GPU, one trial's training sequences/s alone,
# then four trials sharing the GPU (gpus_per_trial 0.25 in a Ray study, 4 at a time), and the share of
# the solo throughput each shared trial keeps (goal >= 80%). Seed preset's model, batch 32.
#
#   benchmarks/gpu.sh                 # from the repository root, in the project's venv (~5-10 min)
#   TRAIN_SIZE=20000 EPOCHS=2 benchmarks/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
TRAIN_SIZE=${TRAIN_SIZE:-20000}
EPOCHS=${EPOCHS:-2}
OUT=${OUT:-$(mktemp -d)}
export RAY_USAGE_STATS_ENABLED=0 PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled RAY_DEDUP_LOGS=0
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu.sh: no CUDA device here')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
common=(--epochs "$EPOCHS" --train-size "$TRAIN_SIZE")  # the seed model: study_overhead.py's default
echo "== solo: 1 trial, a whole GPU"
"$PY" benchmarks/study_overhead.py "${common[@]}" --trials 1 --concurrent 1 --gpus-per-trial 1 --json "$OUT/solo.json"
echo "== shared: 4 trials at once, 0.25 GPU each"
"$PY" benchmarks/study_overhead.py "${common[@]}" --trials 4 --concurrent 4 --gpus-per-trial 0.25 --json "$OUT/shared.json"
"$PY" - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
solo = json.loads((out / "solo.json").read_text())["seq_per_s"][0]
shared = json.loads((out / "shared.json").read_text())["seq_per_s"]
print(f"solo trial: {solo:.0f} sequences/s (training + validation passes, inside train())")
print("shared trials: " + ", ".join(f"{x:.0f}" for x in shared) + f" sequences/s; together {sum(shared):.0f}")
keep = [x / solo for x in shared]
print("GPU SHARE KEPT per shared trial: " + ", ".join(f"{k:.0%}" for k in keep)
      + f" (min {min(keep):.0%}; goal >= 80%)")
PYEOF
