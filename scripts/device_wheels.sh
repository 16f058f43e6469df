#!/usr/bin/env bash
# The Python packages that the lent GPU machines' image lacks (it has torch, torchvision, torchmetrics, numpy, pandas,
# pyarrow, scipy, scikit-image, pillow, click, jinja2, ...), as wheels for its Python 3.12, in .whl/ (git-ignored).
# Run here, where pip reaches the index; the device call carries .whl and scripts/device_checks.sh installs them there.
# Versions are those of this checkout's .venv (`make venv`), so both machines run the same code.
set -euo pipefail
cd "$(dirname "$0")/.."
pins=$(.venv/bin/python - <<'PY'
from importlib.metadata import version
for name in ("dask", "distributed", "partd", "locket", "zict", "tblib", "tornado", "lpips", "torch-fidelity"):
    print(f"{name}=={version(name)}")
PY
)
rm -rf .whl
# shellcheck disable=SC2086  # one argument per pin
.venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 -d .whl $pins
ls .whl
