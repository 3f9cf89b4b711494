#!/usr/bin/env bash
# Coverage-guided fuzzing of Fledge's file parsers with libFuzzer (Swift's -sanitize=fuzzer) and
# AddressSanitizer: tokenizer.json, safetensors, config.json, token shards, manifest.json, JSONL and
# question/answer JSON. Usage: Scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default 60 s, all).
# Seeds come from real files of each kind (made here with fledge); a crash leaves crash-* in
# .build-fuzz/findings/TARGET and exits non-zero — turn it into a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(tokenizer safetensors config shard manifest jsonl qa)
scratch=.build-fuzz

swift build -c release --scratch-path $scratch -Xswiftc -sanitize=fuzzer,address --target FledgeKit > /dev/null
objects=()
for module in FledgeFiles FledgeTokenizer FledgeTensor FledgeModel FledgeData; do
    objects+=($scratch/release/$module.build/*.o)
done
swiftc -O -sanitize=fuzzer,address -parse-as-library Fuzz/FuzzParsers.swift "${objects[@]}" \
    -I $scratch/release/Modules -Xcc -fmodule-map-file=Sources/COpenBLAS/module.modulemap -I Sources/COpenBLAS \
    -lblas -o $scratch/fuzz-parsers 2> /dev/null

# Seeds: one real file of each kind.
fledge=.build/release/fledge
[ -x $fledge ] || swift build -c release > /dev/null
seeds=$scratch/seeds
rm -rf $seeds && mkdir -p $seeds
head -c 20000 data/shakespeare/shakespeare.txt > $seeds/text.txt
$fledge tokenizer train --input $seeds/text.txt --vocab-size 300 --output $seeds/tok.json > /dev/null
$fledge tokenizer train --kind word --input $seeds/text.txt --vocab-size 200 --output $seeds/word.json > /dev/null
$fledge data prepare $seeds/text.txt --split-on blank-line --tokenizer $seeds/tok.json --output $seeds/data > /dev/null
printf '{"fledge_format_version": 1, "architecture": "gpt", "vocab_size": 64, "context_length": 16, "n_layer": 1, "n_embd": 16, "n_head": 2, "n_kv_head": 1, "mlp_width": 32, "norm": "rmsnorm", "norm_placement": "pre", "positions": "rotary", "activation": "swiglu", "parallel_block": false, "tie_embeddings": false, "bias": false, "dropout": 0, "norm_eps": 1e-05, "rope_theta": 10000}' > $seeds/small.json
$fledge model init --config $seeds/small.json --output $seeds/m0 > /dev/null
printf '{"text": "one doc"}\n{"text": "two"}\n{"body": 3}\n' > $seeds/docs.jsonl
printf '[{"question": "Why?", "answer": "Because."}, {"question": "Who", "answer": 4}]' > $seeds/qa.json
seed_of() {
    case $1 in
    tokenizer) echo $seeds/tok.json $seeds/word.json ;;
    safetensors) echo $seeds/m0/model.safetensors ;;
    config) echo $seeds/m0/config.json ;;
    shard) echo $seeds/data/validation_000000.bin ;;
    manifest) echo $seeds/data/manifest.json ;;
    jsonl) echo $seeds/docs.jsonl ;;
    qa) echo $seeds/qa.json ;;
    esac
}

status=0
for target in "${targets[@]}"; do
    corpus=$scratch/corpus/$target findings=$scratch/findings/$target
    mkdir -p "$corpus" "$findings"
    for seed in $(seed_of "$target"); do cp "$seed" "$corpus/"; done
    log=$scratch/fuzz-$target.log
    if FLEDGE_FUZZ_TARGET=$target ASAN_OPTIONS=detect_leaks=0 $scratch/fuzz-parsers "$corpus" \
        -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=4096 -artifact_prefix="$findings/" \
        > "$log" 2>&1; then
        echo "fuzz: $target: $(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || grep -oE '#[0-9]+' "$log" | tail -1) inputs in ${seconds}s, $(grep -oE 'cov: [0-9]+' "$log" | tail -1), no crash"
    else
        status=1
        echo "fuzz: $target: CRASH — see $log and $findings/"
        grep -m3 -E 'ERROR|Fatal|crash|deadly' "$log" || true
    fi
done
exit $status
