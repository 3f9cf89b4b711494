#!/usr/bin/env bash
# Fledge against its PyTorch twin on the bundled corpus: the same model (the demo's), data, batch, schedule,
# initial weights and wall-clock budget, one after the other on the same machine; prints validation loss
# against seconds for both and a JSON line. Needs a venv with torch, safetensors and numpy (.venv or $PYTHON).
#   Scripts/twin.sh [minutes=10] [threads=2]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
threads=${2:-2}
python=${PYTHON:-.venv/bin/python}
out=runs/twin
swift build -c release --product fledge >/dev/null
fledge=.build/release/fledge
mkdir -p $out
$fledge tokenizer train --input data/shakespeare/shakespeare.txt --vocab-size 2048 --output $out/tokenizer.json --overwrite >/dev/null
$fledge data prepare data/shakespeare/shakespeare.txt --split-on blank-line --tokenizer $out/tokenizer.json \
    --output $out/data --overwrite >/dev/null
rm -rf $out/fledge
$fledge train --data $out/data --run $out/fledge --layers 4 --width 192 --heads 6 --context 128 --batch-size 16 \
    --lr 2e-3 --warmup 100 --minutes "$minutes" --eval-every 250 --sample-tokens 0 \
    --checkpoint-minutes 1000 --threads "$threads" | grep -E "validation|done|speed"
$python Scripts/train_pytorch_twin.py --run $out/fledge --out $out/pytorch.jsonl --threads "$threads"
$python Scripts/train_pytorch_twin.py --compare $out/fledge/metrics.jsonl $out/pytorch.jsonl
