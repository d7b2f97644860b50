#!/bin/bash
# The GPU figures of benchmarks/RESULTS.md in one go, each section's output in OUT_DIR/SECTION.txt.
#   benchmarks/gpu.sh OUT_DIR TOKENIZER_DIR [train] [mine] [embed] [align] [search]
# TOKENIZER_DIR: any folder with XLM-R's tokenizer (e.g. ../e5-small): the speed model is XLM-R
# base's shape with random weights, built here (weights do not change the speed).
set -u
out=$1; tok=$2; shift 2
sections=${*:-train mine embed align search}
mkdir -p "$out"
model=/tmp/xlmr-base-random
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, transformers, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__)"
  nproc; date -u; } > "$out/machine.txt" 2>&1
[ -d $model ] || python3 -c "import sys; sys.path.insert(0, 'benchmarks'); from train import random_xlmr_base; from pathlib import Path; random_xlmr_base('$tok', Path('$model'))"
run() { local name=$1; shift; echo "== $name: $*" >> "$out/commands.txt"; local t=$(date +%s)
        "$@" > "$out/$name.txt" 2>&1; echo "exit $? after $(( $(date +%s) - t )) s" >> "$out/$name.txt"; }
for s in $sections; do case $s in
  train)
    run train-tr python3 benchmarks/train.py --model $model --no-prefix --objective tr --device cuda --batches 64,256,1024 \
        --chunk-size 64 --plain-max 1024 --steps 5 --peak-tflops 989
    run train-tr-chunk256 python3 benchmarks/train.py --model $model --no-prefix --objective tr --device cuda --batches 1024 \
        --chunk-size 256 --plain-max 0 --steps 5 --peak-tflops 989
    run train-wacse python3 benchmarks/train.py --model $model --no-prefix --objective wacse --device cuda --batches 1024 \
        --chunk-size 256 --plain-max 1024 --steps 5 --peak-tflops 989 ;;
  mine)
    run mine-check python3 -c "
import sys, numpy as np; sys.path.insert(0, 'benchmarks')
from mine import synthetic_bitext; from wacse_cli.search import topk_cosine
src, tgt, _ = synthetic_bitext(200000, 384)
g, c = (topk_cosine(src[:20000], tgt, 4, device=d)[1] for d in ('cuda', 'cpu'))
print('GPU float16 candidates + float32 rescoring vs CPU float32: same top-4 lists', (g == c).all(1).mean(), 'same top-1', (g[:, 0] == c[:, 0]).mean())"
    run mine python3 benchmarks/mine.py --n 1000000 --device cuda ;;
  embed) run embed python3 benchmarks/embed.py --model $model --sentences 30000 --batch-size 512 --max-length 128 \
        --device cuda --repeats 3 --min-agreement 0.99 ;;
  align) run align python3 benchmarks/align.py --model $model --pairs ../shared/data/gold-align/grc-en.tsv --n 100 \
        --n-embed 500 --device cuda ;;
  search) run search python3 benchmarks/search.py --sizes 100000,1000000 --queries 10000 --indexes exact --device cuda ;;
esac; done
