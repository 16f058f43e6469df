#!/usr/bin/env bash
# The checks that need a GPU, in one device call (each lent machine starts bare, and a session has 15 minutes):
#   bash scripts/device_wheels.sh                         # here, once
#   device run: bash scripts/device_checks.sh             # carry [".whl"]; logs come back from $OUT
# evaluate's CUDA test (GPU scores equal CPU scores), then `python -m bench.infer` and `python -m bench.evaluate` on
# CUDA. The repo root is imported as the package `vton` through a link, as the installed package would be; nothing
# is built there.
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
{ nvidia-smi -L || true; $PYTHON -c "import torch, vton; print(torch.__version__, torch.cuda.is_available(), vton.__file__)"; } \
  2>&1 | tee "$OUT/device.txt"
timeout 240 $PYTHON -m pytest -q -p no:cacheprovider tests/test_eval_protocol.py -k cuda 2>&1 | tee "$OUT/cuda_test.log"
timeout 300 $PYTHON -m bench.infer --pairs "${INFER_PAIRS:-128}" --device "$DEVICE" --batch-size 64 2>&1 \
  | tee "$OUT/bench_infer.log"
timeout 240 $PYTHON -m bench.evaluate --n "${EVAL_N:-256}" --device "$DEVICE" 2>&1 | tee "$OUT/bench_evaluate.log"
