#!/usr/bin/env bash
# Build openpifpaf from PyPI's sdist against the torch that is already installed.
#
# Why: openpifpaf 0.13.11 (the last release) pins torch==1.13.1 and compiles its C++ extension with -std=c++17, which
# current torch headers refuse. So we take the sdist from the package registry, raise the flag to C++20, drop the
# torch/torchvision pins from its metadata (it is built against the installed torch, so the pins would be wrong), and
# build it without build isolation so pip never replaces torch (plus one source fix for current matplotlib, below).
# Its pure-Python runtime deps are installed by name.
# Nothing else is downloaded. Skipped when openpifpaf already imports.
#
# Usage: scripts/install_openpifpaf.sh [PYTHON]   (default: python3; the Makefile passes .venv/bin/python)
# Offline: OPENPIFPAF_SDIST=path/to/openpifpaf-0.13.11.tar.gz uses that sdist instead of downloading it (its runtime
# deps must then be installed already).
set -euo pipefail

PY=${1:-python3}
VERSION=0.13.11

if "$PY" -c "import openpifpaf" >/dev/null 2>&1; then
    echo "openpifpaf already importable: $("$PY" -c 'import openpifpaf; print(openpifpaf.__version__)')"
    exit 0
fi
"$PY" -c "import torch" || { echo "install torch first: openpifpaf is built against it" >&2; exit 1; }
# Building without isolation needs setuptools in the environment itself (venvs of Python 3.12+ come without it).
"$PY" -c "import setuptools" 2>/dev/null || "$PY" -m pip install setuptools

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ -n "${OPENPIFPAF_SDIST:-}" ]; then
    cp "$OPENPIFPAF_SDIST" "$tmp/openpifpaf-$VERSION.tar.gz"
else
    # --no-build-isolation: pip prepares the sdist's metadata with the installed torch, not a fetched torch==1.13.1.
    "$PY" -m pip download --no-deps --no-binary :all: --no-build-isolation "openpifpaf==$VERSION" -d "$tmp"
fi
tar -xzf "$tmp/openpifpaf-$VERSION.tar.gz" -C "$tmp"
src="$tmp/openpifpaf-$VERSION"

sed -i -e 's/-std=c++17/-std=c++20/' -e 's#/std:c++17#/std:c++20#' \
       -e "s/'torch==1.13.1'/'torch'/" -e "s/'torchvision==0.14.1'/'torchvision'/" "$src/setup.py"
for expect in "-std=c++20" "'torch'," "'torchvision',"; do
    grep -qF -- "$expect" "$src/setup.py" || { echo "patching openpifpaf's setup.py failed ($expect)" >&2; exit 1; }
done
# openpifpaf calls matplotlib.cm.get_cmap, which matplotlib 3.9 removed: `import openpifpaf` then fails wherever
# matplotlib is installed. matplotlib.colormaps.get_cmap (matplotlib 3.6+) is the same lookup.
grep -rlF 'matplotlib.cm.get_cmap(' "$src/src" \
    | xargs -r sed -i 's/matplotlib\.cm\.get_cmap(/matplotlib.colormaps.get_cmap(/g'

echo "building openpifpaf $VERSION against torch $("$PY" -c 'import torch; print(torch.__version__)') (a few minutes)"
MAX_JOBS=${MAX_JOBS:-$(nproc)} "$PY" -m pip install --no-build-isolation --no-deps "$src"
# Runtime deps of openpifpaf besides torch/torchvision/numpy/pillow (already there; its importlib_metadata pin is for
# its own tests), by name: pip leaves torch alone since none of these depend on it.
"$PY" -m pip install python-json-logger pysparkling
"$PY" -c "import openpifpaf; print('openpifpaf', openpifpaf.__version__, 'installed')"
