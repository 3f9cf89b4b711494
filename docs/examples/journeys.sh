#!/usr/bin/env bash
# The five users' journeys of issue 12, end to end through the CLI, on the bundled data (data/shakespeare,
# data/qa, data/tokenizers/gpt2). Each prints what it checks and fails loudly. docs/examples/README.md explains
# them; `make test` runs them with --short (tiny models, a few steps: about a minute in all).
#   docs/examples/journeys.sh [--short] [JOURNEY...]     journeys: words scaling smallm qa tutorial
set -euo pipefail
cd "$(dirname "$0")/../.."
short=0
if [ "${1:-}" = "--short" ]; then short=1; shift; fi
journeys=("$@")
[ ${#journeys[@]} -gt 0 ] || journeys=(words scaling smallm qa tutorial)
fledge=$(realpath "${FLEDGE:-.build/release/fledge}")
out=${JOURNEYS_DIR:-$(mktemp -d)}
[ -n "${JOURNEYS_DIR:-}" ] || trap 'rm -rf "$out"' EXIT
mkdir -p "$out"
fail() { echo "journeys: FAILED: $*" >&2; exit 1; }
ok() { echo "journeys: ok: $*"; }
# Sizes: the full journey (minutes) or its short form (seconds).
if [ $short = 1 ]; then text_bytes=400000 budget=(--steps 30) vocab=1024 eval=(--eval-every 15 --eval-batches 2)
else text_bytes=5000000 budget=(--minutes 3) vocab=8000 eval=(--eval-every 250 --eval-batches 20); fi
small=(--layers 2 --width 64 --heads 4 --context 64 --batch-size 8)
head -c $text_bytes data/shakespeare/shakespeare.txt > "$out/stories.txt"

# 1. A word-level model on a story corpus, with Pilish generation.
words() {
    $fledge tokenizer train --kind word --lowercase --input "$out/stories.txt" --vocab-size 4000 \
        --output "$out/words.json" > /dev/null
    $fledge data prepare "$out/stories.txt" --split-on blank-line --tokenizer "$out/words.json" \
        --output "$out/words-data" > /dev/null
    $fledge train --data "$out/words-data" --run "$out/words-run" "${small[@]}" "${budget[@]}" "${eval[@]}" \
        --sample-tokens 0 > "$out/words.log"
    $fledge generate "$out/words-run" --prompt "the king" --pilish --tokens 30 --seed 1 > "$out/words.out" 2> /dev/null
    [ -s "$out/words.out" ] || fail "words: no Pilish output"
    ok "words: $(tr '\n' ' ' < "$out/words.out" | cut -c1-70)"
}

# 2. The scaling guide's data recipe (docs/data-at-scale.md): two real sources mixed 70/30 by tokens (plays and
#    the King James Bible, cut at blank lines), exact and near dedup, a leak-free split, a BPE
#    trained on the same 70/30 mixture; then the 20m preset (a small model when short) with warmup + cosine,
#    checkpoints by step, best and time, and an evaluation over a prompt set.
scaling() {
    head -c $text_bytes data/bible/kjv_bible.txt > "$out/bible.txt"
    local mix=(--source plays="$out/stories.txt":0.7 --source bible="$out/bible.txt":0.3)
    $fledge tokenizer train "${mix[@]}" --vocab-size $vocab --output "$out/bpe.json" > "$out/bpe.log"
    grep -q "^source bible: .*(weight 0.30)" "$out/bpe.log" || fail "scaling: the BPE's mixture: $(cat "$out/bpe.log")"
    $fledge data prepare "${mix[@]}" --split-on blank-line --tokenizer "$out/bpe.json" --output "$out/mixed" \
        > "$out/mixed.log"
    grep -qE "^plays +0\.70 +70\.0% +(69\.[5-9]|70\.[0-4])%" "$out/mixed.log" ||
        fail "scaling: the mix is not 70/30: $(grep -A3 '^source' "$out/mixed.log")"
    grep -qE "^exact-dedup .* duplicate [0-9]+" "$out/mixed.log" || fail "scaling: exact dedup removed nothing"
    # Leak-free: no text (content hash) is on both sides of the split.
    local leaks
    leaks=$(grep '"status":"kept"' "$out/mixed/documents.jsonl" | sed -E 's/.*"hash":"([0-9a-f]+)".*"split":"([a-z]+)".*/\2 \1/' |
        sort -u | awk '{print $2}' | sort | uniq -d | wc -l)
    [ "$leaks" -eq 0 ] || fail "scaling: $leaks texts are in both splits"
    local model=(--preset 20m); [ $short = 1 ] && model=("${small[@]}")
    $fledge train --data "$out/mixed" --run "$out/scaling-run" "${model[@]}" "${budget[@]}" "${eval[@]}" \
        --warmup 10 --schedule cosine --keep-every 10 --checkpoint-minutes 1 --sample-tokens 0 > "$out/scaling.log"
    ls "$out/scaling-run/checkpoints" | grep -q step- || fail "scaling: no step checkpoints"
    [ -d "$out/scaling-run/best" ] || fail "scaling: no best/"
    $fledge eval "$out/scaling-run" --prompts data/demo-prompts.txt --tokens 20 > "$out/scaling-eval.txt"
    grep -q "^===" "$out/scaling-eval.txt" || fail "scaling: no prompt-set evaluation"
    ok "scaling: mix $(grep -E '^(plays|bible) ' "$out/mixed.log" | awk '{print $1, $4}' | tr '\n' ' '), no text in both splits, $(ls "$out/scaling-run/checkpoints" | wc -l) step checkpoints, prompts evaluated"
}

# 3. A smallm-style model: GPT-2's vocabulary, one key/value head, parallel block, RMSNorm, SwiGLU, tied
#    head — then a chat.
smallm() {
    $fledge data prepare "$out/stories.txt" --split-on blank-line --tokenizer gpt2 --output "$out/gpt2-data" > /dev/null
    $fledge train --data "$out/gpt2-data" --run "$out/smallm-run" --layers 2 --width 64 --heads 4 --kv-heads 1 \
        --parallel-block --norm rmsnorm --activation swiglu --positions rotary --tie-embeddings --no-bias \
        --context 64 --batch-size 4 "${budget[@]}" "${eval[@]}" --sample-tokens 0 > "$out/smallm.log"
    grep -q '"parallel_block" : true' "$out/smallm-run/final/config.json" || fail "smallm: not a parallel block"
    printf 'Who are you?\n/quit\n' | $fledge chat "$out/smallm-run" --tokens 12 --seed 1 > "$out/smallm-chat.txt" 2> /dev/null
    grep -q "tokens/s" "$out/smallm-chat.txt" || fail "smallm: the chat did not answer"
    ok "smallm: $(grep -o '[0-9]* parameters' "$out/smallm.log" | head -1), chatted"
}

# 4. A from-scratch BPE with <PAD>,<UNK>,<BOS>,<EOS>, fine-tuned on a Q&A JSON file so that the model learns
#    where answers stop; and the architecture experiments, compared.
qa() {
    $fledge tokenizer train --input "$out/stories.txt" data/qa/chatterbot_en.jsonl --vocab-size $vocab \
        --special-tokens "<PAD>,<UNK>,<BOS>,<EOS>" --output "$out/qa-bpe.json" > /dev/null
    $fledge data prepare "$out/stories.txt" --split-on blank-line --tokenizer "$out/qa-bpe.json" --eos-token "<EOS>" \
        --output "$out/qa-pre" > /dev/null
    $fledge data prepare data/qa/chatterbot_en.jsonl --tokenizer "$out/qa-bpe.json" --eos-token "<EOS>" \
        --bos-token "<BOS>" --output "$out/qa-data" > /dev/null
    $fledge train --data "$out/qa-pre" --run "$out/qa-pre-run" "${small[@]}" "${budget[@]}" "${eval[@]}" \
        --sample-tokens 0 > /dev/null
    # The architecture experiments: heads of their own size (4 × 32 channels in a 64-wide model), post-norm
    # and another β1, compared with the first run on one chart.
    $fledge train --data "$out/qa-pre" --run "$out/qa-arch-run" "${small[@]}" --head-size 32 --norm-placement post \
        --beta1 0.8 "${budget[@]}" "${eval[@]}" --sample-tokens 0 > /dev/null
    grep -q '"head_size" : 32' "$out/qa-arch-run/final/config.json" || fail "qa: head_size was not kept"
    $fledge report "$out/qa-pre-run" "$out/qa-arch-run" --output "$out/qa-compare.html" > /dev/null
    for setting in head_size norm_placement beta1; do
        grep -q "$setting" "$out/qa-compare.html" || fail "qa: the comparison does not show $setting"
    done
    $fledge train --data "$out/qa-data" --init-from "$out/qa-pre-run" --run "$out/qa-run" --batch-size 8 \
        "${budget[@]}" "${eval[@]}" --lr 5e-4 --sample-tokens 0 > /dev/null
    grep -q '"eos_token" : "<EOS>"' "$out/qa-run/final/sequence-format.json" || fail "qa: the checkpoint lost <EOS>"
    printf 'What is your name?\n/quit\n' | $fledge chat "$out/qa-run" --tokens 40 --seed 1 > "$out/qa-chat.txt" 2> /dev/null
    ! grep -q "<EOS>" "$out/qa-chat.txt" || fail "qa: the reply printed <EOS>: $(cat "$out/qa-chat.txt")"
    ok "qa: compared head_size/norm_placement/beta1; fine-tuned with <EOS>; reply: $(head -c 80 "$out/qa-chat.txt" | tr '\n' ' ')"
}

# 5. The Hugging Face tutorial: BPE 8000 with the Whitespace pre-tokenizer, greedy generation.
tutorial() {
    $fledge tokenizer train --kind bpe --pre-tokenizer whitespace --vocab-size $vocab \
        --special-tokens "[UNK],[CLS],[SEP],[PAD],[MASK]" --input "$out/stories.txt" --output "$out/hf.json" > /dev/null
    $fledge data prepare "$out/stories.txt" --split-on blank-line --tokenizer "$out/hf.json" --eos-token "[SEP]" \
        --output "$out/hf-data" > /dev/null
    $fledge train --data "$out/hf-data" --run "$out/hf-run" "${small[@]}" "${budget[@]}" "${eval[@]}" \
        --sample-tokens 0 > /dev/null
    $fledge generate "$out/hf-run" --prompt "Call me Ishmael." --temperature 0 --tokens 20 > "$out/hf.out" 2> /dev/null
    [ "$(tr -cd ' ' < "$out/hf.out" | wc -c)" -ge 5 ] || fail "tutorial: generated text has no spaces: $(cat "$out/hf.out")"
    ok "tutorial: $(head -c 80 "$out/hf.out" | tr '\n' ' ')"
}

for journey in "${journeys[@]}"; do "$journey"; done
echo "journeys: ${#journeys[@]} passed, 0 failed"
