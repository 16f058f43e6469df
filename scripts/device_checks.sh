#!/usr/bin/env bash
# The checks that need a GPU, in one device call (each lent machine starts bare, and a session has 15 minutes):
#   bash scripts/device_wheels.sh                         # here, once
#   device run: bash scripts/device_checks.sh             # carry [".whl"]; logs come back from $OUT
# the issue's figure first, `bench.infer` (the fast path with CUDA graphs against the test.py-style loop, with its
# deviation record, once with the JPEGs decoded by PIL in the loader and once by nvjpeg on the device), then the
# forward rows one change at a time (`bench.models`: channels_last, bf16 and fp16 autocast, compile), `bench.decode`
# (PIL against nvjpeg), evaluate's and the fast path's CUDA tests, and `bench.evaluate`. Each step has its own timeout
# so that the whole call stays under ~9.5 minutes (run it with timeout_s 600); FIGURES.txt collects the last line of
# each. The repo root is imported as the package `vton` through a link, as the installed
# package would be; nothing is built there.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/vton-device}
DEVICE=${DEVICE:-cuda}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT" /tmp/vton-pkg
$PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/vton-site .whl/*.whl \
  || exit 1
ln -sfn "$PWD" /tmp/vton-pkg/vton
export PYTHONPATH=/tmp/vton-site:/tmp/vton-pkg PYTHONUNBUFFERED=1 PYTHONFAULTHANDLER=1  # a crash prints its Python stack
{ date -u; nvidia-smi -L || true; $PYTHON -c "import torch, vton; print(torch.__version__, torch.cuda.is_available(), vton.__file__)"; } \
  2>&1 | tee "$OUT/device.txt"
step() {  # step NAME SECONDS COMMAND...: its log in $OUT/NAME.log, its last line in $OUT/FIGURES.txt
  local name=$1 limit=$2
  shift 2
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
  echo "$name (rc ${PIPESTATUS[0]}): $(tail -n 1 "$OUT/$name.log")" >> "$OUT/FIGURES.txt"
}
step bench_infer 280 $PYTHON -m bench.infer --pairs "${INFER_PAIRS:-1024}" --device "$DEVICE" --batch-size 64 \
  --decode host device
step bench_models_bf16 50 $PYTHON -m bench.models --device "$DEVICE" --precision bf16 --batch 64 --reps 10
step bench_models_fp16 30 $PYTHON -m bench.models --device "$DEVICE" --precision fp16 --batch 64 --reps 10 --no-compile
step bench_decode 25 $PYTHON -m bench.decode --images 512 --device "$DEVICE"
step cuda_tests 120 $PYTHON -m pytest -q -p no:cacheprovider tests/test_eval_protocol.py tests/test_infer_fast.py -k cuda
step bench_evaluate 40 $PYTHON -m bench.evaluate --n "${EVAL_N:-256}" --device "$DEVICE"
cat "$OUT/FIGURES.txt"
