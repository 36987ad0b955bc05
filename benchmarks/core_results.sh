#!/usr/bin/env bash
# The measurements behind docs/RESULTS.md: the original post's setup (--preset seed) on the sum
# task, and on the product task with each loss family, one run after another (nice'd), then a
# Markdown table of their summary.json files plus the exact commands.
#
#   bash benchmarks/core_results.sh                 # 4 runs x 20 epochs (long: the full seed model)
#   bash benchmarks/core_results.sh --epochs 2      # shorter runs
#   bash benchmarks/core_results.sh --epochs 1 --smoke --out-root /tmp/results   # seconds: checks the script
#
# Options: --epochs N (default: the preset's 20), --smoke (tiny data and model), --out-root DIR
# (default runs/results; each run goes to DIR/<task>-<loss>, replaced if it exists),
# --device auto|cpu|cuda (default auto), --table-only (print the table of existing runs).
set -euo pipefail
cd "$(dirname "$0")/.."

epochs="" smoke="" out_root="runs/results" device="auto" table_only=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --epochs) epochs="${2:?--epochs needs a number}"; shift 2 ;;
    --smoke) smoke="--smoke"; shift ;;
    --out-root) out_root="${2:?--out-root needs a folder}"; shift 2 ;;
    --device) device="${2:?--device needs auto, cpu or cuda}"; shift 2 ;;
    --table-only) table_only=1; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "core_results.sh: unknown argument '$1'; allowed: --epochs N, --smoke, --out-root DIR, --device D, --table-only" >&2; exit 2 ;;
  esac
done
if [[ -n "$epochs" && ! "$epochs" =~ ^[1-9][0-9]*$ ]]; then
  echo "core_results.sh: --epochs must be a positive integer, got '$epochs'" >&2; exit 2
fi

if [[ -x .venv/bin/seqsum ]]; then seqsum=.venv/bin/seqsum; python=.venv/bin/python
else seqsum=seqsum; python=python3; fi

runs=("sum mse" "product mse" "product log" "product classify")
commands=()
for run in "${runs[@]}"; do
  read -r task loss <<<"$run"
  cmd=(nice -n 10 "$seqsum" train --preset seed --task "$task" --loss "$loss" --device "$device")
  [[ -n "$epochs" ]] && cmd+=(--epochs "$epochs")
  [[ -n "$smoke" ]] && cmd+=("$smoke")
  cmd+=(--out "$out_root/$task-$loss" --overwrite)
  commands+=("${cmd[*]}")
  if [[ -z "$table_only" ]]; then
    echo ">>> ${cmd[*]}" >&2
    "${cmd[@]}" >&2 || echo ">>> exit code $? (see $out_root/$task-$loss)" >&2  # a diverged run still counts
  fi
done

"$python" - "$out_root" "${commands[@]}" <<'PY'
import json, os, platform, sys
from pathlib import Path

root, commands = Path(sys.argv[1]), sys.argv[2:]

def cell(s, key, fmt):
    v = s.get(key)
    return "n/a" if v is None else format(v, fmt)

print("| task | loss | status | epochs | test MSE | test exact | 9x9 cell exact | seconds |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for cmd in commands:
    words = cmd.split()
    task, loss = words[words.index("--task") + 1], words[words.index("--loss") + 1]
    path = root / f"{task}-{loss}" / "summary.json"
    if not path.is_file():
        print(f"| {task} | {loss} | missing | | | | | |")
        continue
    s = json.loads(path.read_text())
    print(f"| {task} | {loss} | {s['status']} | {s['epochs']} | {cell(s, 'test/mse', '.4g')} | "
          f"{cell(s, 'test/exact', '.3f')} | {cell(s, 'pairs/9x9/exact', '.2f')} | {cell(s, 'train_seconds', '.0f')} |")
try:
    import torch
    torch_version = torch.__version__
except ImportError:
    torch_version = "?"
print(f"\nseconds = training time (summary.json `train_seconds`); {os.cpu_count()} CPU cores, "
      f"Python {platform.python_version()}, torch {torch_version}. Commands:\n")
print("```bash")
print("\n".join(commands))
print("```")
PY
