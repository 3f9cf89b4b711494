#!/usr/bin/env bash
# Fledge as a hostile or careless user drives it (run by `make test`, about two minutes): malformed files of
# every format Fledge reads, hostile numbers on every numeric option, outputs that collide with inputs, two
# processes on one run, and kill -9 at every rename of a checkpoint swap (strace's syscall fault injector).
# Each case asserts the exit code, that no signal or trap ended the process, the message's key words, and
# that no user file changed (a SHA-256 of every file under $tmp/keep before and after). Prints the count by
# outcome and "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
fledge=$(realpath "${FLEDGE:-.build/release/fledge}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
keep="$tmp/keep"  # everything the user made; no case but a successful one may change it
mkdir -p "$keep"
passed=0 failed=0
declare -A outcome=()

fingerprint() { (cd "$keep" && find . -type f ! -name '.lock' ! -name '.verified' -print0 | sort -z | xargs -0 sha256sum) | sha256sum; }
say() { echo "adversarial: $*"; }

# check NAME EXPECT KEYWORDS -- COMMAND...: EXPECT is ok (exit 0) or refused (exit 1 or 64 with an "error"
# line); KEYWORDS an extended regular expression the output must match (case-insensitive).
check() {
    local name=$1 expect=$2 keywords=$3
    shift 4
    local before after rc
    before=$(fingerprint)
    "$@" > "$tmp/out" 2>&1 < /dev/null
    rc=$?
    after=$(fingerprint)
    local why=""
    if [ $rc -ge 128 ]; then why="killed by signal $((rc - 128))"; fi
    if grep -qE 'Fatal error|Illegal instruction|Segmentation fault|Trace/breakpoint|Stack dump|Abort' "$tmp/out"; then
        why="trapped: $(grep -m1 -E 'Fatal error|Illegal|Segmentation|Trace|Stack dump|Abort' "$tmp/out")"
    fi
    if [ -z "$why" ]; then
        case $expect in
        ok) [ $rc -eq 0 ] || why="exit $rc, expected 0" ;;
        refused)
            if [ $rc -ne 1 ] && [ $rc -ne 64 ]; then why="exit $rc, expected 1 or 64"
            elif ! grep -qi 'error' "$tmp/out"; then why="no error message"; fi
            [ "$before" = "$after" ] || why="a user file changed"
            ;;
        esac
    fi
    if [ -z "$why" ] && [ -n "$keywords" ] && ! grep -qiE "$keywords" "$tmp/out"; then
        why="message lacks /$keywords/"
    fi
    if [ -z "$why" ]; then
        passed=$((passed + 1))
        outcome[$expect]=$((${outcome[$expect]:-0} + 1))
    else
        failed=$((failed + 1))
        echo "adversarial: FAILED: $name: $why"
        sed 's/^/    | /' "$tmp/out" | head -8
    fi
}

# ---------------------------------------------------------------------------------------------------------
# What a user has: a corpus folder, a tokenizer, prepared data, a trained run.
mkdir -p "$keep/corpus"
head -c 120000 data/shakespeare/shakespeare.txt > "$keep/corpus/a.txt"
tail -c 60000 data/shakespeare/shakespeare.txt > "$keep/corpus/b.txt"
echo "my notes" > "$keep/notes.txt"
mkdir -p "$keep/mine" && echo "precious" > "$keep/mine/thesis.txt"
$fledge tokenizer train --input "$keep/corpus/a.txt" --vocab-size 400 --output "$keep/tok.json" > /dev/null
$fledge data prepare "$keep/corpus" --split-on blank-line --tokenizer "$keep/tok.json" --output "$keep/data" > /dev/null
tiny=(--layers 1 --width 32 --heads 2 --context 32 --batch-size 4 --eval-every 1000 --eval-batches 1
    --sample-tokens 0 --threads 2)
$fledge train --data "$keep/data" --run "$keep/run" "${tiny[@]}" --steps 4 > /dev/null
ckpt="$keep/run/latest"
[ -f "$ckpt/model.safetensors" ] || { echo "adversarial: setup failed"; exit 1; }

# --- 1. Outputs that would destroy inputs or folders Fledge did not write ---------------------------------
prep=(data prepare "$keep/corpus" --split-on blank-line --tokenizer "$keep/tok.json")
check "prepare onto its input" refused "destroy the input" -- $fledge "${prep[@]}" --output "$keep/corpus" --overwrite
check "prepare onto a folder above its input" refused "destroy the input" -- $fledge "${prep[@]}" --output "$keep" --overwrite
check "prepare onto ." refused "current folder|destroy" -- bash -c "cd '$keep/mine' && $fledge data prepare ../corpus --split-on blank-line --tokenizer ../tok.json --output . --overwrite"
check "prepare into its input folder" refused "inside the input folder" -- $fledge "${prep[@]}" --output "$keep/corpus/prepared"
check "prepare onto a user's folder" refused "not written by Fledge" -- $fledge "${prep[@]}" --output "$keep/mine" --overwrite
check "prepare onto a user's file" refused "is a file" -- $fledge "${prep[@]}" --output "$keep/notes.txt" --overwrite
check "prepare onto its tokenizer" refused "destroy the input" -- $fledge "${prep[@]}" --output "$keep/tok.json" --overwrite
check "prepare onto a run" refused "run output, not prepared-data" -- $fledge "${prep[@]}" --output "$keep/run" --overwrite
check "prepare onto existing data without --overwrite" refused "already exists" -- $fledge "${prep[@]}" --output "$keep/data"
check "prepare into a missing parent" refused "does not exist" -- $fledge "${prep[@]}" --output "$tmp/no/such/out"
check "tokenizer onto its corpus" refused "destroy the input" -- $fledge tokenizer train --input "$keep/corpus/a.txt" --output "$keep/corpus/a.txt"
check "tokenizer onto a user's file" refused "already exists" -- $fledge tokenizer train --input "$keep/corpus/a.txt" --output "$keep/notes.txt"
check "tokenizer onto a user's file, --overwrite" refused "not a tokenizer" -- $fledge tokenizer train --input "$keep/corpus/a.txt" --output "$keep/notes.txt" --overwrite
check "tokenizer onto a folder" refused "is a folder" -- $fledge tokenizer train --input "$keep/corpus/a.txt" --output "$keep/mine"
check "tokenizer from a folder" refused "is a folder" -- $fledge tokenizer train --input "$keep/corpus" --output "$tmp/t.json"
check "tokenizer from a missing file" refused "does not exist" -- $fledge tokenizer train --input "$tmp/nope.txt" --output "$tmp/t.json"
check "model init onto trained weights" refused "already exists" -- $fledge model init --preset tiny --output "$ckpt"
check "model init onto trained weights, --overwrite" refused "not written by Fledge|will not be replaced" -- $fledge model init --preset tiny --output "$ckpt" --overwrite
check "model init onto a user's folder" refused "already exists|not written" -- $fledge model init --preset tiny --output "$keep/mine" --overwrite
check "train into a user's folder" refused "did not make as a run" -- $fledge train --data "$keep/data" --run "$keep/mine" "${tiny[@]}" --steps 1
check "train into ." refused "did not make as a run" -- bash -c "cd '$keep' && $fledge train --data data --run . --steps 1 --layers 1 --width 32 --heads 2 --context 32"
check "train into a file" refused "is a file" -- $fledge train --data "$keep/data" --run "$keep/notes.txt" "${tiny[@]}" --steps 1
check "train into a folder inside a file" refused "is a file" -- $fledge train --data "$keep/data" --run "$keep/notes.txt/run" "${tiny[@]}" --steps 1
check "prepare into a folder inside a file" refused "is a file" -- $fledge "${prep[@]}" --output "$keep/notes.txt/out"
check "train onto an existing run" refused "already holds a run" -- $fledge train --data "$keep/data" --run "$keep/run" "${tiny[@]}" --steps 1
check "a new tokenizer replaces an old one with --overwrite" ok "wrote" -- $fledge tokenizer train --input "$keep/corpus/a.txt" --vocab-size 300 --output "$tmp/t.json"
check "…and again" ok "wrote" -- $fledge tokenizer train --input "$keep/corpus/a.txt" --vocab-size 300 --output "$tmp/t.json" --overwrite
check "prepared data replaces its own kind" ok "prepared" -- $fledge "${prep[@]}" --output "$tmp/d2"
check "…with --overwrite" ok "prepared" -- $fledge "${prep[@]}" --output "$tmp/d2" --overwrite

# --- 2. Malformed tokenizer.json ----------------------------------------------------------------------------
tokcase() {  # NAME KEYWORDS JSON
    printf '%s' "$3" > "$tmp/bad-tok.json"
    check "tokenizer.json: $1" refused "$2" -- $fledge tokenizer encode --tokenizer "$tmp/bad-tok.json" --text "hello"
}
bl='"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}'
tokcase "id 2^62" "id 4611686018427387904|only" '{"model": {"type": "BPE", "vocab": {"a": 0, "b": 4611686018427387904}, "merges": []}, '"$bl"'}'
tokcase "negative id" "negative|id" '{"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}, '"$bl"'}'
tokcase "gap in ids" "id" '{"model": {"type": "BPE", "vocab": {"a": 0, "b": 2, "c": 3}, "merges": []}, '"$bl"'}'
tokcase "no merges" "merges" '{"model": {"type": "BPE", "vocab": {"a": 0}}, '"$bl"'}'
tokcase "merges not a list" "merges" '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": 7}, '"$bl"'}'
tokcase "merge of unknown tokens" "merges\[0\]" '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["x y"]}, '"$bl"'}'
tokcase "added_tokens not a list" "added_tokens" '{"added_tokens": 5, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, '"$bl"'}'
tokcase "added token without id" "added_tokens\[0\]" '{"added_tokens": [{"content": "<eos>"}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, '"$bl"'}'
tokcase "added token with a fractional id" "added_tokens\[0\]" '{"added_tokens": [{"id": 1.5, "content": "<eos>"}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, '"$bl"'}'
tokcase "two added tokens on one id" "already" '{"added_tokens": [{"id": 1, "content": "<a>"}, {"id": 1, "content": "<b>"}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, '"$bl"'}'
tokcase "added token on another token's id" "but model.vocab has" '{"added_tokens": [{"id": 0, "content": "<eos>"}], "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}, '"$bl"'}'
tokcase "added token far out of range" "outside" '{"added_tokens": [{"id": 99999999999, "content": "<a>"}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, '"$bl"'}'
tokcase "vocab not an object" "model.vocab" '{"model": {"type": "BPE", "vocab": [1, 2], "merges": []}, '"$bl"'}'
tokcase "unknown model type" "model.type" '{"model": {"type": "Unigram", "vocab": []}, '"$bl"'}'
tokcase "a normalizer" "normalizer" '{"normalizer": {"type": "NFKC"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, '"$bl"'}'
tokcase "not JSON" "not a JSON" 'hello world'
tokcase "empty file" "not a JSON" ''
tokcase "a JSON list" "not a JSON" '[1, 2, 3]'
tokcase "word-level with id 2^40" "model.vocab" '{"model": {"type": "WordLevel", "vocab": {"a": 1099511627776}, "unk_token": "a"}, "pre_tokenizer": {"type": "Whitespace"}}'
tokcase "word-level with a gap" "model.vocab" '{"model": {"type": "WordLevel", "vocab": {"a": 0, "b": 5}, "unk_token": "a"}, "pre_tokenizer": {"type": "Whitespace"}}'
head -c 3000 /dev/urandom > "$tmp/bad-tok.json"
check "tokenizer.json: random bytes" refused "not a JSON" -- $fledge tokenizer encode --tokenizer "$tmp/bad-tok.json" --text hi
check "tokenizer: a folder" refused "is a folder" -- $fledge tokenizer encode --tokenizer "$keep/corpus" --text hi
check "tokenizer: missing" refused "does not exist" -- $fledge tokenizer encode --tokenizer "$tmp/none.json" --text hi
check "gpt2 from another folder" ok "^15496 11 995 0" -- bash -c "cd / && $fledge tokenizer encode --tokenizer gpt2 --text 'Hello, world!'"

# --- 3. Malformed config.json (fledge model info --config) ------------------------------------------------
cfgcase() {  # NAME KEYWORDS FIELD=VALUE (JSON fragment replacing the field)
    sed "s/\"$3\" : [^,}]*/\"$3\" : $4/" "$ckpt/config.json" > "$tmp/bad-config.json"
    cmp -s "$ckpt/config.json" "$tmp/bad-config.json" && { failed=$((failed + 1)); echo "adversarial: FAILED: config case $1 changed nothing"; }
    check "config.json: $1" refused "$2" -- $fledge model info --config "$tmp/bad-config.json"
}
cfgcase "n_layer 1e9" "n_layer.*limit|limit" n_layer 1000000000
cfgcase "n_embd 64.5" "n_embd.*whole number" n_embd 64.5
cfgcase "n_head 0" "n_head" n_head 0
cfgcase "n_head negative" "n_head" n_head -4
cfgcase "n_embd a string" "n_embd" n_embd '"wide"'
cfgcase "vocab 2^40" "vocab_size" vocab_size 1099511627776
cfgcase "context 1e12" "context_length" context_length 1000000000000
cfgcase "n_layer true" "n_layer" n_layer true
cfgcase "n_layer null" "n_layer" n_layer null
cfgcase "width not divisible" "divisible" n_head 3
cfgcase "dropout 2" "dropout" dropout 2
cfgcase "norm unknown" "norm" norm '"batchnorm"'
for v in 0 -8 2.5 '"wide"' 1000000; do
    sed "s/\"n_layer\" :/\"head_size\" : $v, \"n_layer\" :/" "$ckpt/config.json" > "$tmp/bad-config.json"
    check "config.json: head_size $v" refused "head_size" -- $fledge model info --config "$tmp/bad-config.json"
done
sed 's/"n_layer" : [^,]*,//' "$ckpt/config.json" > "$tmp/bad-config.json"
check "config.json: n_layer missing" refused "n_layer.*missing" -- $fledge model info --config "$tmp/bad-config.json"
printf '{"fledge_format_version": 1, "architecture": "gpt", "n_layer": 1000000, "n_embd": 65536, "n_head": 1, "n_kv_head": 1, "mlp_width": 262144, "vocab_size": 16777216, "context_length": 1024, "norm": "layernorm", "norm_placement": "pre", "positions": "learned", "activation": "gelu", "parallel_block": false, "tie_embeddings": true, "bias": true, "dropout": 0, "norm_eps": 1e-5, "rope_theta": 10000}' > "$tmp/huge.json"
check "config.json: a model larger than memory" refused "limit|GB" -- $fledge model init --config "$tmp/huge.json" --output "$tmp/huge"
sed 's/"n_layer" : [^,]*,/"n_layer" : 4000,/; s/"n_embd" : [^,]*,/"n_embd" : 65536,/; s/"n_head" : [^,]*,/"n_head" : 1,/; s/"n_kv_head" : [^,]*,/"n_kv_head" : 1,/' "$ckpt/config.json" > "$tmp/big.json"
check "config.json: weights beyond memory" refused "GB" -- $fledge model init --config "$tmp/big.json" --output "$tmp/big"
check "config.json: a folder" refused "is a folder" -- $fledge model info --config "$keep/corpus"
printf 'not json' > "$tmp/bad-config.json"
check "config.json: not JSON" refused "not a JSON" -- $fledge model info --config "$tmp/bad-config.json"

# --- 4. Malformed safetensors (loaded by fledge generate) --------------------------------------------------
le64() { local n=$1 s="" i; for i in 0 1 2 3 4 5 6 7; do s+=$(printf '\\x%02x' $(((n >> (8 * i)) & 255))); done; printf "$s"; }
stcase() {  # NAME KEYWORDS HEADER DATA_BYTES
    rm -rf "$tmp/st" && cp -r "$ckpt" "$tmp/st"
    { le64 ${#3}; printf '%s' "$3"; head -c "$4" /dev/zero; } > "$tmp/st/model.safetensors"
    check "safetensors: $1" refused "$2" -- $fledge generate "$tmp/st" --prompt "O" --tokens 2
}
rm -rf "$tmp/st" && cp -r "$ckpt" "$tmp/st" && { le64 100000; printf '{}'; } > "$tmp/st/model.safetensors"
check "safetensors: header longer than the file" refused "does not fit" -- $fledge generate "$tmp/st" --prompt "O" --tokens 2
stcase "header not JSON" "not a JSON" "hello there" 16
stcase "overlapping tensors" "overlap" '{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}' 24
stcase "offsets past the end" "reach past" '{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}' 8
stcase "negative offsets" "reach past|valid" '{"a": {"dtype": "F32", "shape": [4], "data_offsets": [-16, 0]}}' 16
stcase "a shape whose size overflows" "shape" '{"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 16]}}' 16
stcase "unknown dtype" "dtype" '{"a": {"dtype": "Q4", "shape": [4], "data_offsets": [0, 16]}}' 16
stcase "tensors of another model" "does not have|missing" '{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}' 16
rm -rf "$tmp/st" && cp -r "$ckpt" "$tmp/st" && head -c 5 "$ckpt/model.safetensors" > "$tmp/st/model.safetensors"
check "safetensors: 5 bytes" refused "too short" -- $fledge generate "$tmp/st" --prompt "O" --tokens 2
rm -rf "$tmp/st" && cp -r "$ckpt" "$tmp/st" && rm "$tmp/st/model.safetensors" && mkdir "$tmp/st/model.safetensors"
check "safetensors: a folder" refused "is a folder" -- $fledge generate "$tmp/st" --prompt "O" --tokens 2

# --- 5. Shards and manifests ------------------------------------------------------------------------------
shardcase() {  # NAME KEYWORDS MUTATION (run in the copy)
    rm -rf "$tmp/d" && cp -r "$keep/data" "$tmp/d" && rm -f "$tmp/d/.verified"
    (cd "$tmp/d" && eval "$3")
    check "data: $1 (info)" refused "$2" -- $fledge data info "$tmp/d"
    check "data: $1 (train)" refused "$2" -- $fledge train --data "$tmp/d" --run "$tmp/r-$RANDOM" "${tiny[@]}" --steps 1
}
shardcase "truncated shard" "bytes|truncated" 'truncate -s 1000 train_000000.bin'
shardcase "shard shortened by 2 bytes" "bytes but its header|header says" 'truncate -s -2 train_000000.bin'
shardcase "bad magic" "magic" 'printf "\x00\x00\x00\x00" | dd of=train_000000.bin conv=notrunc 2>/dev/null'
shardcase "one token changed" "SHA-256" 'printf "\x07\x00" | dd of=train_000000.bin bs=1 seek=2000 conv=notrunc 2>/dev/null'
shardcase "missing shard" "missing|cannot open" 'rm validation_000000.bin'
shardcase "tokenizer swapped" "SHA-256|tokenizer" 'cp "'"$tmp"'/t.json" tokenizer.json'
shardcase "manifest not JSON" "not a valid manifest" 'echo garbage > manifest.json'
shardcase "manifest lacks a field" "lacks the field" 'sed -i "s/\"splits\"/\"splitz\"/" manifest.json'
shardcase "manifest from the future" "format_version" 'sed -i "s/\"format_version\" : 1/\"format_version\" : 99/" manifest.json'
shardcase "manifest gone" "not found" 'rm manifest.json'
# ids beyond the vocabulary, with the manifest's hash made to match (only the id check can catch it)
rm -rf "$tmp/d" && cp -r "$keep/data" "$tmp/d" && rm -f "$tmp/d/.verified"
printf '\xff\xff' | dd of="$tmp/d/train_000000.bin" bs=1 seek=1100 conv=notrunc 2>/dev/null
new=$(sha256sum "$tmp/d/train_000000.bin" | cut -c1-64)
old=$(sha256sum "$keep/data/train_000000.bin" | cut -c1-64)
sed -i "s/$old/$new/" "$tmp/d/manifest.json"
check "data: id 65535 beyond a 400-token vocabulary (info)" refused "outside the tokenizer's vocabulary" -- $fledge data info "$tmp/d"
check "data: id beyond the vocabulary (train)" refused "outside the tokenizer's vocabulary" -- $fledge train --data "$tmp/d" --run "$tmp/r-ids" "${tiny[@]}" --steps 1
check "data: a file, not a folder" refused "is a file" -- $fledge data info "$keep/notes.txt"
check "data info of good data" ok "SHA-256 and token ids OK" -- $fledge data info "$keep/data"

# --- 6. Inputs: JSONL, question/answer JSON, prompt files --------------------------------------------------
inputcase() {  # NAME KEYWORDS FILE-NAME CONTENT [EXTRA...]
    local name=$1 keywords=$2 file=$3 content=$4
    shift 4
    printf '%s' "$content" > "$tmp/$file"
    check "input: $name" refused "$keywords" -- $fledge data prepare "$tmp/$file" --tokenizer "$keep/tok.json" --output "$tmp/in-out" "$@"
}
inputcase "JSONL with a broken line" "line 2" "a.jsonl" $'{"text": "one"}\n{"text": \n{"text": "three"}\n'
inputcase "JSONL without the field" "text" "b.jsonl" $'{"body": "one"}\n'
inputcase "JSONL whose field is a number" "text" "c.jsonl" $'{"text": 5}\n'
inputcase "Q&A array without answers" "answer" "qa.json" '[{"question": "why?"}]'
inputcase "Q&A that is not a list" "question|answer|JSON" "qb.json" '{"question": "why?", "answer": 3}'
inputcase "empty file" "filtered out|empty|no documents|nothing" "empty.txt" ''
inputcase "binary file" "split|documents|filtered" "bin.txt" "$(head -c 2000 /dev/urandom | tr -d '\000')"
printf '{"prompt": "a"}\n{"prompt": \n' > "$tmp/prompts.jsonl"
check "prompt file: broken JSONL line" refused "line 2" -- $fledge generate "$ckpt" --prompt-file "$tmp/prompts.jsonl"
check "prompt file: a folder" refused "is a folder" -- $fledge generate "$ckpt" --prompt-file "$keep/corpus"
check "prompt file: missing" refused "does not exist" -- $fledge eval "$ckpt" --prompts "$tmp/none.txt"
check "eval --text: a folder" refused "is a folder" -- $fledge eval "$ckpt" --text "$keep/corpus"
check "report on a folder that is not a run" refused "not a training run" -- $fledge report "$keep/mine" --output "$tmp/cmp.html"
check "report onto a run's file" refused "already exists" -- $fledge report "$keep/run" --output "$keep/notes.txt"
check "report of a run" ok "wrote" -- $fledge report "$keep/run" --output "$tmp/cmp.html"
check "a checkpoint that is a file" refused "is a file, not a run" -- $fledge generate "$keep/notes.txt" --prompt O
check "a checkpoint that does not exist" refused "no run or checkpoint" -- $fledge generate "$tmp/none" --prompt O
check "eval --batches larger than the data" ok "perplexity|loss" -- $fledge eval "$ckpt" --data "$keep/data" --batches 1000000

# --- 7. Hostile numbers on every numeric option --------------------------------------------------------------
num() { check "number: $*" refused "must|error" -- $fledge "$@"; }
for v in 0 -1 100000 abc; do num tokenizer encode --tokenizer gpt2 --text hi --threads=$v; done
for v in 0 -1 100000000000 1e3; do num tokenizer train --input "$keep/corpus/a.txt" --output "$tmp/v.json" --vocab-size=$v; done
for v in 0 -3; do num tokenizer train --input "$keep/corpus/a.txt" --output "$tmp/v.json" --min-frequency=$v; done
num tokenizer info --tokenizer gpt2 --top=-1
for v in 0 1 -0.5 nan; do num "${prep[@]}" --output "$tmp/n" --val-fraction=$v; done
for v in 0 -5 99999999999; do num "${prep[@]}" --output "$tmp/n" --shard-tokens=$v; done
for v in 0 -1; do num "${prep[@]}" --output "$tmp/n" --val-tokens=$v; done
num "${prep[@]}" --output "$tmp/n" --near-duplicate-threshold=nan
num "${prep[@]}" --output "$tmp/n" --min-chars=-1
num "${prep[@]}" --output "$tmp/n" --min-chars=10 --max-chars=5
num "${prep[@]}" --output "$tmp/n" --shingle-words=0
train=(train --data "$keep/data" --run "$tmp/num-run" "${tiny[@]}")
for v in 0 -1 1e9 abc; do num "${train[@]}" --batch-size=$v; done
for v in 0 -1; do num "${train[@]}" --steps=$v; done
for v in 0 -1 nan inf; do num "${train[@]}" --minutes=$v; done
for v in -1 nan inf; do num "${train[@]}" --lr=$v; done
for v in 0 -2; do num "${train[@]}" --accumulation=$v; done
for v in 0 -1; do num "${train[@]}" --eval-batches=$v --steps 1; done
for v in 0 -1; do num "${train[@]}" --eval-every=$v; done
for v in 0 -1; do num "${train[@]}" --checkpoint-every=$v; done
num "${train[@]}" --warmup=-1
num "${train[@]}" --sample-tokens=-1
num "${train[@]}" --clip=nan
num "${train[@]}" --beta2=1
num "${train[@]}" --min-lr-fraction=2
num "${train[@]}" --checkpoint-minutes=0
num "${train[@]}" --threads=100000
for v in 0 -1 1000000000; do num "${train[@]}" --layers=$v; done
for v in 0 100000000; do num "${train[@]}" --width=$v; done
for v in 0 -1 100000000; do num "${train[@]}" --head-size=$v; done
check "train: rotary with an odd --head-size" refused "even head size.*head_size is 7" -- $fledge "${train[@]}" --positions rotary --head-size 7
for v in 0 1000000000000; do num "${train[@]}" --context=$v; done
for v in 1 -0.1 nan; do num "${train[@]}" --dropout=$v; done
for v in 0 -1; do num eval "$ckpt" --data "$keep/data" --batches=$v; done
for v in 0 -1; do num eval "$ckpt" --data "$keep/data" --batch-size=$v; done
num eval "$ckpt" --prompts data/demo-prompts.txt --tokens=-5
for v in 0 -1 1000000000000; do num generate "$ckpt" --prompt O --tokens=$v; done
for v in -1 nan; do num generate "$ckpt" --prompt O --temperature=$v; done
for v in 0 1.5 nan; do num generate "$ckpt" --prompt O --top-p=$v; done
num generate "$ckpt" --prompt O --top-k=0
num generate "$ckpt" --prompt O --top-k=-3
num generate "$ckpt" --prompt O --min-p=2
num generate "$ckpt" --prompt O --repetition-penalty=0
num generate "$ckpt" --prompt O --no-repeat-ngram=-1
num chat "$ckpt" --tokens=0
check "chat: hostile /commands are answered and the session goes on" ok "allows no reply.*|more than 1000000" -- bash -c "printf '/tokens -5\n/tokens 99999999999999\n/temperature nan\n/top-k 0\n/top-p 5\n/seed -1\n/quit\n' | $fledge chat '$ckpt' --tokens 3"
num bench train --steps=0
num bench train --configs=z
num model init --preset tiny --output "$tmp/mi" --seed=-1
head -c 20000 "$keep/corpus/a.txt" > "$tmp/repeat-valid.txt"
check "a validation file that repeats the training text" refused "validation file.*kept none.*duplicate" -- $fledge data prepare "$keep/corpus/a.txt" --validation "$tmp/repeat-valid.txt" --split-on blank-line --tokenizer "$keep/tok.json" --output "$tmp/rv"
check "upsampling a tiny source 1000×" refused "repeat source" -- $fledge data prepare --source big="$keep/corpus/a.txt":0.001 --source small="$keep/corpus/b.txt":0.999 --mix upsample --split-on blank-line --tokenizer "$keep/tok.json" --output "$tmp/up"

# --- 8. Resume ---------------------------------------------------------------------------------------------
check "resume with --lr" refused "would be ignored" -- $fledge train --resume "$keep/run" --lr 1 --steps 6
check "resume with an architecture flag" refused "would be ignored" -- $fledge train --resume "$keep/run" --layers 3 --steps 6
check "resume with --batch-size" refused "would be ignored" -- $fledge train --resume "$keep/run" --batch-size 2 --steps 6
$fledge data prepare "$keep/corpus/b.txt" --split-on blank-line --tokenizer "$keep/tok.json" --output "$tmp/other" > /dev/null
check "resume on other data" refused "not the data this run trained on" -- $fledge train --resume "$keep/run" --data "$tmp/other" --steps 6
check "resume a missing run" refused "no run at" -- $fledge train --resume "$tmp/none" --steps 6
check "resume a user's folder" refused "did not make as a run" -- $fledge train --resume "$keep/mine" --steps 6
check "resume behind the run" refused "not beyond" -- $fledge train --resume "$keep/run" --steps 2
mkdir -p "$tmp/early" && cp "$keep/run/metrics.jsonl" "$tmp/early/" && cp "$keep/run/.fledge-output" "$tmp/early/"
check "resume a run killed before its first save" refused "no checkpoint to resume" -- $fledge train --resume "$tmp/early" --steps 6

# --- 9. Two processes on one run ---------------------------------------------------------------------------
cp -r "$keep/run" "$tmp/busy"
flock "$tmp/busy/.lock" sleep 30 &
holder=$!
sleep 0.3
check "a second process on a busy run (resume)" refused "in use by another Fledge process" -- $fledge train --resume "$tmp/busy" --steps 6
check "a second process on a busy run (new)" refused "in use by another Fledge process" -- $fledge train --data "$keep/data" --run "$tmp/busy" "${tiny[@]}" --steps 1
kill $holder 2> /dev/null; wait $holder 2> /dev/null
flock "$tmp/.busy-data.lock" sleep 30 &
holder=$!
sleep 0.3
check "a second data prepare to a busy output" refused "in use by another Fledge process" -- $fledge "${prep[@]}" --output "$tmp/busy-data"
kill $holder 2> /dev/null; wait $holder 2> /dev/null
$fledge train --data "$keep/data" --run "$tmp/race" "${tiny[@]}" --steps 100000 > "$tmp/race1.log" 2>&1 &
first=$!
for _ in $(seq 1 100); do [ -f "$tmp/race/.lock" ] && break; sleep 0.05; done
check "two fledge train --run R at once" refused "in use by another Fledge process" -- $fledge train --data "$keep/data" --run "$tmp/race" "${tiny[@]}" --steps 3
kill -INT $first; wait $first
check "…the first one still saved and resumes" ok "resuming" -- $fledge train --resume "$tmp/race" --steps $(($(grep -o '"step" : [0-9]*' "$tmp/race/latest/trainer-state.json" | grep -o '[0-9]*$') + 1)) --threads 2

# --- 10. kill -9 at every rename of a checkpoint swap --------------------------------------------------------
if command -v strace > /dev/null && strace -f -o /dev/null true 2> /dev/null; then
    cp -r "$keep/run" "$tmp/pristine"
    renames="rename,renameat,renameat2"
    for mode in exchange two-renames; do
        env=()
        [ $mode = two-renames ] && env=(FLEDGE_NO_RENAME_EXCHANGE=1)
        rm -rf "$tmp/k" && cp -r "$tmp/pristine" "$tmp/k"
        total=$(env "${env[@]}" strace -f -qq -e trace=$renames -o "$tmp/trace" $fledge train --resume "$tmp/k" --steps 6 --threads 2 > /dev/null 2>&1; grep -cE '^[0-9]+ +rename' "$tmp/trace")
        for n in $(seq 1 "$total"); do
            rm -rf "$tmp/k" && cp -r "$tmp/pristine" "$tmp/k"
            (env "${env[@]}" strace -f -qq -o /dev/null -e trace=$renames -e inject=$renames:error=EIO:signal=KILL:when=$n \
                $fledge train --resume "$tmp/k" --steps 6 --threads 2 > /dev/null 2>&1; true) 2> /dev/null  # no "Killed" line
            # With the exchange, latest/ loads at once; with two renames, the next start restores it first.
            if [ $mode = exchange ]; then
                check "kill -9 at rename $n of $total ($mode): latest/ loads" ok "" -- $fledge generate "$tmp/k/latest" --prompt O --tokens 2 --seed 1
            fi
            check "kill -9 at rename $n of $total ($mode): --resume continues" ok "resuming" -- $fledge train --resume "$tmp/k" --steps 7 --threads 2
            check "kill -9 at rename $n of $total ($mode): latest/ loads after" ok "" -- $fledge generate "$tmp/k/latest" --prompt O --tokens 2 --seed 1
            left=$(find "$tmp/k" -maxdepth 1 -name '.*.tmp-*' -o -maxdepth 1 -name '.*.old-*' | wc -l)
            [ "$left" -eq 0 ] || { failed=$((failed + 1)); echo "adversarial: FAILED: rename $n ($mode): $left leftovers after the next start"; }
        done
    done
else
    say "skipped: kill -9 at each rename (strace is missing or ptrace is not allowed here)"
fi

# Export and import: never onto a user's files or the input, bad folders refused by name.
check "export hf" ok "GPT2LMHeadModel" -- $fledge export "$keep/run" --format hf --output "$tmp/hf"
check "export hf again without --overwrite" refused "exists" -- $fledge export "$keep/run" --format hf --output "$tmp/hf"
check "export hf with --overwrite replaces its own export" ok "wrote" -- $fledge export "$keep/run" --format hf --output "$tmp/hf" --overwrite
check "export hf onto a user's folder" refused "not written by Fledge" -- $fledge export "$keep/run" --format hf --output "$keep/mine" --overwrite
check "export hf into the run itself" refused "" -- $fledge export "$keep/run" --format hf --output "$keep/run/final" --overwrite
check "export gguf onto a user's file" refused "not a GGUF file" -- $fledge export "$keep/run" --format gguf --output "$keep/notes.txt" --overwrite
check "export gguf" ok "GGUF v3" -- $fledge export "$keep/run" --format gguf --dtype f16 --output "$tmp/m.gguf"
check "export hf --dtype f16" refused "gguf only" -- $fledge export "$keep/run" --format hf --dtype f16 --output "$tmp/hf16"
check "export of a folder that is no run" refused "not a run" -- $fledge export "$keep/mine" --format hf --output "$tmp/x"
check "import hf of its own export" ok "imported" -- $fledge import hf "$tmp/hf" --output "$tmp/imported"
check "import hf: a folder without config.json" refused "config.json" -- $fledge import hf "$keep/mine" --output "$tmp/i1"
mkdir -p "$tmp/bert" && echo '{"model_type": "bert"}' > "$tmp/bert/config.json"
check "import hf: model_type bert" refused "model_type 'bert'" -- $fledge import hf "$tmp/bert" --output "$tmp/i2"
cp -r "$tmp/hf" "$tmp/hf-scaled" && sed -i 's/"scale_attn_by_inverse_layer_idx" : false/"scale_attn_by_inverse_layer_idx" : true/' "$tmp/hf-scaled/config.json"
check "import hf: an option Fledge does not compute" refused "scale_attn_by_inverse_layer_idx" -- $fledge import hf "$tmp/hf-scaled" --output "$tmp/i3"
cp -r "$tmp/hf" "$tmp/hf-cut" && head -c 5000 "$tmp/hf/model.safetensors" > "$tmp/hf-cut/model.safetensors"
check "import hf: truncated weights" refused "safetensors|truncated|data_offsets" -- $fledge import hf "$tmp/hf-cut" --output "$tmp/i4"
check "import hf onto a user's folder" refused "not written by Fledge" -- $fledge import hf "$tmp/hf" --output "$keep/mine" --overwrite
for v in -1 100000; do num model logits "$ckpt" --text "$keep/notes.txt" --output "$tmp/l.safetensors" --greedy=$v; done
check "model logits of a text longer than the context" refused "must fit in the context" -- $fledge model logits "$ckpt" --text "$keep/corpus/a.txt" --output "$tmp/l.safetensors"

# A Ctrl-C during data prepare leaves no hidden folder (but the work folder .int.partial when it holds a
# checkpoint to continue from); a kill -9 leftover goes at the next run.
$fledge data prepare data/shakespeare/shakespeare.txt --split-on line --tokenizer "$keep/tok.json" --output "$tmp/int" > /dev/null 2>&1 &
pid=$!
for _ in $(seq 1 100); do ls -a "$tmp" | grep -q '^\.int\.tmp-' && break; sleep 0.02; done
kill -INT $pid 2> /dev/null; wait $pid
[ -f "$tmp/.int.partial/progress.json" ] && rm -r "$tmp/.int.partial"
left=$(ls -a "$tmp" | grep -c '^\.int\.' || true)
[ "$left" -eq 0 ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "adversarial: FAILED: Ctrl-C during data prepare left $left hidden folders"; }
mkdir -p "$tmp/.int.tmp-999999" "$tmp/.int.old-999998"
check "a later prepare removes a killed one's leftovers" ok "prepared" -- $fledge "${prep[@]}" --output "$tmp/int"
left=$(ls -a "$tmp" | grep -cE '^\.int\.(tmp|old)-' || true)
[ "$left" -eq 0 ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "adversarial: FAILED: leftovers survived the next run"; }

say "outcomes: ${outcome[refused]:-0} refused with a clear message, ${outcome[ok]:-0} succeeded as they should; $failed failed"
echo "adversarial: $passed passed, $failed failed"
[ $failed -eq 0 ]
