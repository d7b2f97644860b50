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
    # torch alone from the PyTorch index (--index-url: no other package can come from there); its
    # dependencies come from the default index with wacse's own below. Few retries: where
    # download.pytorch.org cannot be reached, pip falls back to the default index at once.
    "$PYTHON" -m pip install --quiet --retries 2 --no-deps --index-url https://download.pytorch.org/whl/cpu \
        "torch==2.13.0" || echo "note: the PyTorch CPU index cannot be reached; torch comes from the default index" >&2
fi
if [ "${1:-}" = "test" ]; then
    "$PYTHON" -m pip install --quiet -e ".[test]"
else
    "$PYTHON" -m pip install --quiet -e .
fi
command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
command -v wacse >/dev/null 2>&1 || echo "note: 'wacse' is not on PATH; run it as: $PYTHON -m wacse_cli" >&2
