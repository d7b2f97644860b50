#!/bin/sh
# Install wacse and its dependencies into the current Python environment.
#   ./install.sh          the tool
#   ./install.sh test     the tool and what its tests need
# Where no NVIDIA GPU is present and PyTorch is not installed yet, the CPU build of PyTorch is
# installed first (a plain `pip install torch` would fetch a multi-GB CUDA build).
set -e
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c "import torch" >/dev/null 2>&1 && ! command -v nvidia-smi >/dev/null 2>&1; then
    # few retries: where download.pytorch.org cannot be reached, pip goes on with the other sources at once
    "$PYTHON" -m pip install --quiet --retries 2 "torch==2.13.0" --extra-index-url https://download.pytorch.org/whl/cpu
fi
if [ "${1:-}" = "test" ]; then
    "$PYTHON" -m pip install --quiet -e ".[test]"
else
    "$PYTHON" -m pip install --quiet -e .
fi
command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
command -v wacse >/dev/null 2>&1 || echo "note: 'wacse' is not on PATH; run it as: $PYTHON -m wacse_cli" >&2
