#!/usr/bin/env bash
# The GPU checks of the ensemble trainer (issue 16), in at most 8 minutes on one NVIDIA GPU:
#   1. the tests that take a device (TVO_TEST_DEVICE), on it: the group step's exactness against
#      single runs, the stacked Adam, the absence of host synchronisation in a group step, and
#      the objectives' and training step's tests;
#   2. single and group steps timed (benchmarks/ensemble_speed.py, members up to 256);
# each writing its JSON lines and logs into $OUT (env.json, tests.log, tests.xml,
# ensemble-linear_1.jsonl, ensemble-gaussian.jsonl). Every part has its own time limit and the
# script goes on after one fails; its exit status is the first failure's.
#
#   OUT=/tmp/gpu bash benchmarks/gpu_check.sh                  # on the GPU machine
#   OUT=/tmp/gpu bash benchmarks/gpu_check.sh --device cpu --quick   # the same path, on a CPU
#
# PYTHON (default: .venv/bin/python if it exists, else python) must have tvo and a CUDA build of
# torch installed.
set -uo pipefail
device=cuda
quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    *) echo "usage: OUT=DIR $0 [--device cuda|cpu] [--quick]" >&2; exit 2 ;;
  esac
done
: "${OUT:?set OUT to the folder for the results}"
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
status=0
note() { echo "[$(date +%H:%M:%S)] $*"; }
fail() { [ "$status" -eq 0 ] && status=$1; note "failed ($1): $2"; }

note "environment"
timeout 30 "$PYTHON" - "$device" > "$OUT/env.json" <<'PY' || fail $? "environment"
import json, sys, torch
device = torch.device(sys.argv[1])
info = {"torch": torch.__version__, "device": str(device), "cuda": torch.cuda.is_available(),
        "threads": torch.get_num_threads()}
if device.type == "cuda":
    info["gpu"] = torch.cuda.get_device_name(device)
print(json.dumps(info))
PY
cat "$OUT/env.json"

if [ "$quick" -eq 1 ]; then
  tests=(tests/test_ensemble.py -k "single_runs_loss or stacked_adam or host_sync")
  members=(1 2); steps=20; budget_tests=300; budget_bench=120
else
  tests=(tests/test_ensemble.py tests/test_step.py tests/objectives)
  members=(1 4 16 64 256); steps=50; budget_tests=220; budget_bench=100
fi

note "tests on $device"
TVO_TEST_DEVICE="$device" timeout "$budget_tests" "$PYTHON" -m pytest -q -p no:cacheprovider \
  "${tests[@]}" --junitxml="$OUT/tests.xml" > "$OUT/tests.log" 2>&1 || fail $? "tests (tests.log)"
tail -3 "$OUT/tests.log"

for model in linear_1 gaussian; do
  batch=24; [ "$model" = gaussian ] && batch=100
  note "ensemble_speed $model on $device, members ${members[*]}"
  timeout "$budget_bench" "$PYTHON" benchmarks/ensemble_speed.py --model "$model" -S 10 -K 5 \
    --batch-size "$batch" --members "${members[@]}" --steps "$steps" --device "$device" --json \
    > "$OUT/ensemble-$model.jsonl" || fail $? "ensemble_speed $model"
  cat "$OUT/ensemble-$model.jsonl"
done
note "done, status $status"
exit "$status"
