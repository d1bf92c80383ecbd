#!/usr/bin/env bash
# The GPU check of docs/running_at_scale.md: `optuna-nas worker --devices cuda:0` runs a
# small search (examples/worker_objective.py: NAS-Bench-201 cells on the bundled digits)
# and prints each trial's seconds per epoch on the GPU. Meant for the device machine, in
# well under 8 minutes:  bash examples/gpu_worker_check.sh   (TRIALS, EPOCHS, DEVICES=cpu
# for a dry run without a GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/gpu_worker_check}"
mkdir -p "$out"
db="$out/gpu_worker.db"
rm -f "$db"
export OPTUNA_NAS_EXAMPLE_EPOCHS="${EPOCHS:-4}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
started=$(date +%s)
timeout 420 python -m optuna_nas.cli worker --storage "sqlite:///$db" --study-name gpu \
    --objective examples/worker_objective.py:objective --devices "${DEVICES:-cuda:0}" \
    --trials "${TRIALS:-12}" --seed 0 --heartbeat-interval 10 2>&1 | tee "$out/worker.log"
echo "worker wall time: $(( $(date +%s) - started )) s"
python - "$db" <<'PY' | tee "$out/step_times.txt"
import statistics
import sys

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.load_study(study_name="gpu", storage=f"sqlite:///{sys.argv[1]}")
print(f"{'trial':>5} {'state':>8} {'device':>7} {'s/epoch':>8} {'epochs':>6} {'value':>7}")
per_epoch = []
for t in study.trials:
    seconds = t.user_attrs.get("seconds_per_epoch")
    if seconds is not None:
        per_epoch.append(seconds)
    print(
        f"{t.number:>5} {t.state.name:>8} {t.user_attrs.get('device', '-'):>7} "
        f"{seconds if seconds is not None else float('nan'):>8.3f} "
        f"{len(t.intermediate_values):>6} {t.value if t.value is not None else float('nan'):>7.4f}"
    )
if per_epoch:
    print(f"seconds per epoch: median {statistics.median(per_epoch):.3f}, "
          f"first {per_epoch[0]:.3f} (CUDA start-up), min {min(per_epoch):.3f}")
PY
