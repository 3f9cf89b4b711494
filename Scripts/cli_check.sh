#!/usr/bin/env bash
# End-to-end checks of the command line, run by `make test` after the unit tests (about a minute):
#   pretrain a tiny model → Ctrl-C saves latest/ and --resume continues → prepare question/answer data →
#   fine-tune with --init-from (answers only) → a mismatched tokenizer is refused → `fledge chat` through a
#   pipe → `fledge generate` with a stop string, Pilish and bad settings → Parquet in → an interrupted
#   preparation continued, and a full disk.
set -euo pipefail
cd "$(dirname "$0")/.."
fledge=${FLEDGE:-.build/release/fledge}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "cli_check: FAILED: $*" >&2; exit 1; }
step_of() { grep -o '"step" : [0-9]*' "$1" | grep -o '[0-9]*$'; }  # a checkpoint's step (no python needed)
ok() { echo "cli_check: ok: $*"; }

head -c 300000 data/shakespeare/shakespeare.txt > "$tmp/text.txt"
$fledge tokenizer train --input "$tmp/text.txt" --vocab-size 512 --output "$tmp/tok.json" > /dev/null
$fledge data prepare "$tmp/text.txt" --split-on blank-line --tokenizer "$tmp/tok.json" --output "$tmp/data" \
    > /dev/null
# MKL's code path (when MKL is the BLAS): the kernels this CPU's instructions allow by default, and MKL's own
# vendor rule with FLEDGE_MKL_VENDOR_CHECK=1 (its default code path on a CPU that is not Intel's).
blas_line() { "$@" bench train --configs a --steps 1 --warmup 0 --threads 1 2>&1 | head -1; }
default_blas=$(blas_line $fledge)
if [[ $default_blas == *"BLAS mkl"* ]]; then
    [[ $default_blas == *AVX* ]] || fail "MKL did not choose an AVX path: $default_blas"
    vendor_blas=$(FLEDGE_MKL_VENDOR_CHECK=1 blas_line $fledge)
    if grep -q GenuineIntel /proc/cpuinfo; then
        [[ $vendor_blas == *AVX* ]] || fail "with MKL's own rule on an Intel CPU: $vendor_blas"
    else
        [[ $vendor_blas == *"Intel(R) Architecture processors"* ]] || fail "FLEDGE_MKL_VENDOR_CHECK=1 ignored: $vendor_blas"
    fi
    path_of() { local p=${1#*; }; echo "${p%), fp32}"; }
    ok "MKL code path: $(path_of "$default_blas"); with FLEDGE_MKL_VENDOR_CHECK=1: $(path_of "$vendor_blas")"
else
    ok "MKL is not the BLAS (${default_blas#*BLAS }): code path check skipped"
fi

tiny=(--layers 2 --width 64 --heads 4 --context 64 --batch-size 8 --eval-every 1000 --eval-batches 2
    --sample-tokens 0 --threads 2)

# Ctrl-C: SIGINT mid-run saves latest/ and exits cleanly; --resume continues from that step.
$fledge train --data "$tmp/data" --run "$tmp/pre" "${tiny[@]}" --steps 100000 > "$tmp/pre.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
    [ -f "$tmp/pre/metrics.jsonl" ] && [ "$(grep -c '"train"' "$tmp/pre/metrics.jsonl")" -ge 30 ] && break
    sleep 0.1
done
kill -INT $pid
wait $pid || fail "fledge train exited non-zero after Ctrl-C: $(tail -3 "$tmp/pre.log")"
[ -f "$tmp/pre/latest/model.safetensors" ] || fail "Ctrl-C did not save latest/"
step=$(step_of "$tmp/pre/latest/trainer-state.json")
[ "$step" -ge 30 ] || fail "latest/ is at step $step"
$fledge train --resume "$tmp/pre" --steps $((step + 10)) --threads 2 > "$tmp/resume.log" 2>&1 ||
    fail "resume: $(tail -3 "$tmp/resume.log")"
resumed=$(step_of "$tmp/pre/final/trainer-state.json")
[ "$resumed" -eq $((step + 10)) ] || fail "resume ended at step $resumed, expected $((step + 10))"
ok "Ctrl-C saved latest/ at step $step; --resume continued to $resumed"

# A disk that fills while saving (a 64 KB file-size limit; writes fail with EFBIG as on a full disk): the run
# stops with a message and the previous latest/ is untouched and still resumes.
before=$(sha256sum < "$tmp/pre/latest/model.safetensors")
if (ulimit -f 64; trap '' XFSZ; $fledge train --resume "$tmp/pre" --steps $((resumed + 5)) --threads 2) \
    > "$tmp/full.log" 2>&1; then
    fail "a save beyond the file-size limit reported success"
fi
grep -q "free disk space" "$tmp/full.log" || fail "unclear message on a failed save: $(tail -3 "$tmp/full.log")"
[ "$(sha256sum < "$tmp/pre/latest/model.safetensors")" = "$before" ] || fail "the failed save changed latest/"
ls -a "$tmp/pre" | grep -q tmp- && fail "a failed save left a temporary folder"
ok "failed save: $(grep -m1 'error' "$tmp/full.log" | cut -c1-110)…; latest/ intact"

# Question/answer fine-tuning from the pretrained run (loss on answers only).
for i in $(seq 0 599); do
    printf '{"question": "What comes after %d?", "answer": "After %d comes %d."}\n' "$i" "$i" $((i + 1))
done > "$tmp/qa.jsonl"
$fledge data prepare "$tmp/qa.jsonl" --tokenizer "$tmp/tok.json" --val-fraction 0.2 --output "$tmp/qa" > /dev/null
$fledge train --data "$tmp/qa" --run "$tmp/ft" --init-from "$tmp/pre" --batch-size 8 --steps 40 --eval-every 20 \
    --eval-batches 2 --sample-tokens 0 --lr 1e-3 --threads 2 > "$tmp/ft.log" 2>&1 || fail "fine-tune: $(tail -3 "$tmp/ft.log")"
grep -q '{question}' "$tmp/ft/final/sequence-format.json" || fail "the checkpoint lacks the chat template"
ok "fine-tuned with --init-from on question/answer shards"

# --init-from takes the model as it is: architecture flags are refused by name; shorter sequences are a
# training setting of their own (--sequence-length), apart from the model's --context.
if $fledge train --data "$tmp/qa" --run "$tmp/ft2" --init-from "$tmp/pre" --layers 3 --context 32 --steps 2 \
    > "$tmp/ft2.log" 2>&1; then
    fail "--init-from accepted architecture flags it would ignore"
fi
grep -q -- "--layers, --context would be ignored" "$tmp/ft2.log" || fail "unclear refusal: $(cat "$tmp/ft2.log")"
$fledge train --data "$tmp/qa" --run "$tmp/ft3" --init-from "$tmp/pre" --sequence-length 32 --batch-size 8 --steps 2 \
    --eval-batches 1 --sample-tokens 0 --threads 2 > "$tmp/ft3.log" 2>&1 || fail "--sequence-length: $(tail -3 "$tmp/ft3.log")"
grep -q "batch 8 × 32 × 1" "$tmp/ft3.log" || fail "--sequence-length 32 was not used: $(grep plan "$tmp/ft3.log")"
ok "--init-from refuses architecture flags; --sequence-length sets the training windows"

# A tokenizer that does not match the checkpoint is refused with a message naming it.
$fledge tokenizer train --input "$tmp/text.txt" --vocab-size 400 --output "$tmp/other.json" > /dev/null
$fledge data prepare "$tmp/qa.jsonl" --tokenizer "$tmp/other.json" --output "$tmp/qa-other" > /dev/null
if $fledge train --data "$tmp/qa-other" --run "$tmp/bad" --init-from "$tmp/pre" --steps 2 > "$tmp/bad.log" 2>&1; then
    fail "--init-from accepted data made with another tokenizer"
fi
grep -q "tokenizer" "$tmp/bad.log" || fail "unclear mismatch message: $(cat "$tmp/bad.log")"
ok "mismatched tokenizer refused: $(head -1 "$tmp/bad.log")"

# Chat through a pipe: two replies with their speed, a command, an error that does not end the session.
printf 'What comes after 7?\n/temperature 0\n/nonsense\nWhat comes after 8?\n/quit\n' |
    $fledge chat "$tmp/ft" --tokens 12 --seed 1 --threads 2 > "$tmp/chat.out" 2> "$tmp/chat.err" ||
    fail "chat: $(cat "$tmp/chat.err")"
[ "$(grep -c ' tokens/s' "$tmp/chat.out")" -eq 2 ] || fail "chat did not answer twice: $(cat "$tmp/chat.out")"
grep -q "unknown command /nonsense" "$tmp/chat.out" || fail "chat did not report the unknown command"
ok "chat through a pipe"

# Generate: a stop string, Pilish, and refused settings.
# The stop is a letter from the same seed's text without a stop (a fixed letter may not come before the
# model's end of sequence: which text a seed gives depends on the CPU's vector width), and the stopped text
# must be that text cut just before the letter's first appearance.
$fledge generate "$tmp/pre" --prompt "ROMEO:" --tokens 40 --seed 3 --ignore-eos > "$tmp/free.out" 2> /dev/null ||
    fail "generate --ignore-eos"
free=$(tail -c +7 "$tmp/free.out" | tr -d '\n')
stop=$(printf '%s' "$free" | tail -c +3 | grep -o '[a-z]' | head -1)
[ -n "$stop" ] || fail "no letter to stop at in: $free"
$fledge generate "$tmp/pre" --prompt "ROMEO:" --tokens 40 --seed 3 --ignore-eos --stop "$stop" > "$tmp/gen.out" \
    2> "$tmp/gen.err" || fail "generate: $(cat "$tmp/gen.err")"
grep -q "stopped: stop string" "$tmp/gen.err" || fail "stop string not honoured: $(cat "$tmp/gen.out" "$tmp/gen.err")"
[ "$(tail -c +7 "$tmp/gen.out" | tr -d '\n')" = "${free%%"$stop"*}" ] ||
    fail "stopped at '$stop': '$(tail -c +7 "$tmp/gen.out")', expected '${free%%"$stop"*}'"
$fledge generate "$tmp/pre" --prompt "Pi:" --tokens 30 --seed 4 --pilish > "$tmp/pilish.out" 2> /dev/null ||
    fail "generate --pilish"
for bad in "--top-k=0" "--top-p=1.5" "--temperature=-1"; do
    # shellcheck disable=SC2086
    if $fledge generate "$tmp/pre" --prompt "x" $bad > /dev/null 2> "$tmp/bad.err"; then fail "accepted $bad"; fi
    grep -q "error" "$tmp/bad.err" || fail "no message for $bad"
done
if $fledge generate "$tmp/pre" --prompt "" > /dev/null 2> "$tmp/empty.err"; then fail "accepted an empty prompt"; fi
grep -q "empty" "$tmp/empty.err" || fail "no message for an empty prompt"
ok "generate: stop string, Pilish ($(cat "$tmp/pilish.out" | tr '\n' ' ' | head -c 60)…), bad settings refused"

# Parquet in: a dataset folder laid out like the hub's (data/train-0000K-of-0000N.parquet, written by pyarrow),
# a BPE trained on its text column, prepared data; a nested column is refused with the file and column named.
mkdir -p "$tmp/hub/data"
cp Tests/FledgeDataTests/Fixtures/parquet/hub-train-0000*-of-00002.parquet "$tmp/hub/data/"
$fledge tokenizer train --input "$tmp/hub/data/hub-train-00000-of-00002.parquet" \
    "$tmp/hub/data/hub-train-00001-of-00002.parquet" --vocab-size 600 --output "$tmp/hub-tok.json" \
    > "$tmp/hub.log" 2>&1 || fail "tokenizer train on Parquet: $(cat "$tmp/hub.log")"
$fledge data prepare --source hub="$tmp/hub" --tokenizer "$tmp/hub-tok.json" --output "$tmp/hub-data" \
    > "$tmp/hub.log" 2>&1 || fail "data prepare on Parquet: $(cat "$tmp/hub.log")"
grep -q '^read  *2000 ' "$tmp/hub.log" || fail "the 2,000 Parquet rows were not read: $(cat "$tmp/hub.log")"
if $fledge data prepare Tests/FledgeDataTests/Fixtures/parquet/nested.parquet --tokenizer "$tmp/hub-tok.json" \
    --output "$tmp/nested" > "$tmp/nested.log" 2>&1; then fail "a nested Parquet column was accepted"; fi
grep -q 'nested.parquet, column "text" is nested' "$tmp/nested.log" || fail "unclear: $(cat "$tmp/nested.log")"
ok "Parquet: BPE and prepared data from a hub-style folder (2,000 rows); nested column refused"

# Streaming preparation. Ctrl-C after a checkpoint leaves no dataset and keeps the work of the files done; the
# same command then continues from them and makes the dataset a run from nothing makes. A disk that fills (a
# 2 MB file-size limit) ends with a message naming the space needed, and nothing is left.
mkdir -p "$tmp/many"
for i in $(seq 1 12); do
    head -c 1000000 data/shakespeare/shakespeare.txt | sed -e "s/ the / the$i /g; s/ and / and$i /g; s/ of / of$i /g" \
        > "$tmp/many/part-$(printf %02d "$i").txt"
done
many=(data prepare "$tmp/many" --split-on blank-line --tokenizer "$tmp/tok.json" --threads 1 --shard-tokens 500000)
$fledge "${many[@]}" --output "$tmp/many-fresh" > /dev/null
$fledge "${many[@]}" --output "$tmp/many-out" --checkpoint-every 0 > "$tmp/int.log" 2>&1 &
pid=$!
for _ in $(seq 1 500); do [ -f "$tmp/.many-out.partial/progress.json" ] && break; sleep 0.01; done
kill -INT $pid
if wait $pid; then fail "the preparation finished before Ctrl-C (make the input larger)"; fi
[ -e "$tmp/many-out" ] && fail "Ctrl-C left a dataset behind"
ls -a "$tmp" | grep -q "many-out.tmp-" && fail "Ctrl-C left a temporary folder"
grep -q "the same command continues" "$tmp/int.log" || fail "no word of the kept work: $(cat "$tmp/int.log")"
$fledge "${many[@]}" --output "$tmp/many-out" > "$tmp/cont.log" 2>&1 || fail "rerun: $(tail -3 "$tmp/cont.log")"
grep -q "continued an interrupted run" "$tmp/cont.log" || fail "the rerun did not continue: $(head -3 "$tmp/cont.log")"
for shard in "$tmp"/many-fresh/*.bin "$tmp/many-fresh/documents.jsonl"; do
    cmp -s "$shard" "$tmp/many-out/$(basename "$shard")" || fail "$(basename "$shard") differs from a run from nothing"
done
[ -e "$tmp/.many-out.partial" ] && fail "the work folder was left after success"
if (ulimit -f 2000; trap '' XFSZ; $fledge "${many[@]}" --output "$tmp/full-data") > "$tmp/full2.log" 2>&1; then
    fail "a preparation beyond the file-size limit reported success"
fi
grep -q "needs about" "$tmp/full2.log" || fail "unclear message on a full disk: $(tail -3 "$tmp/full2.log")"
ls -a "$tmp" | grep -q "full-data" && fail "a failed preparation left files behind"
ok "prepare: Ctrl-C kept the work of $(grep -o '[0-9]* files*' "$tmp/cont.log" | head -1) for the rerun (same shards as a fresh run); full disk: $(grep -m1 -o 'needs about [0-9.]* MB' "$tmp/full2.log")"
