#!/usr/bin/env bash
# Set up a virtual environment in .venv with tvo installed in editable mode.
#
# torch: if the Python you start from already imports torch (your own CUDA build, say), the
# venv sees it through --system-site-packages and it is kept. Otherwise torch==2.13.0 is
# installed: a CPU build where pip finds one locally, the usual wheel elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
    if "$PYTHON" -c 'import torch' 2>/dev/null; then
        echo "setup: using the torch that $PYTHON already has"
        "$PYTHON" -m venv --system-site-packages "$VENV"
    else
        "$PYTHON" -m venv "$VENV"
    fi
fi
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    echo "setup: installing torch==2.13.0"
    "$VENV/bin/python" -m pip install --quiet torch==2.13.0
fi
"$VENV/bin/python" -m pip install --quiet -e '.[dev]'

# Fashion-MNIST ships as Debian's dataset-fashion-mnist; install it where we can (root with
# apt-get), and otherwise say how: only that dataset needs it.
FASHION=/usr/share/datasets/fashion-mnist
if [ ! -d "$FASHION" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing Debian's dataset-fashion-mnist"
        (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
            || echo "setup: could not install dataset-fashion-mnist (only fashion-mnist needs it)"
    else
        echo "setup: for fashion-mnist, install Debian's dataset-fashion-mnist (or pass --root)"
    fi
fi
"$VENV/bin/python" -c 'import torch, tvo; print(f"setup: tvo {tvo.__version__}, torch {torch.__version__}")'
