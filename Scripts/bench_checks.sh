#!/usr/bin/env bash
# What bounds and overflow checks outside the kernels cost: this build against a build of an earlier commit
# (by default the last one that compiled every target with -Ounchecked), interleaved round by round on the
# same machine. Measures a training step (configs a, b, c), GPT-2 encoding on one thread, `fledge data
# prepare` on the shared corpora, and KV-cache decoding. Prints a table of medians, ratios, and a JSON line.
#   Scripts/bench_checks.sh [rounds=3] [base-commit=1d9a9f0]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
base=${2:-1d9a9f0}
work=${FLEDGE_BENCH_DIR:-/tmp/fledge-bench-checks}
mkdir -p "$work"
swift build -c release --product fledge > /dev/null
new=$(realpath .build/release/fledge)
if [ ! -x "$work/base-fledge" ]; then
    rm -rf "$work/base-src" && git worktree add -f -q "$work/base-src" "$base"
    (cd "$work/base-src" && swift build -c release --product fledge --scratch-path "$work/base-build" > /dev/null)
    cp "$work/base-build/release/fledge" "$work/base-fledge"
    git worktree remove --force "$work/base-src"
fi
old="$work/base-fledge"
corpus=../shared/corpora
[ -s "$work/tok.json" ] || $new tokenizer train --input $corpus/kjv_bible.txt --vocab-size 8192 --output "$work/tok.json" > /dev/null
cat $corpus/*.txt > "$work/all.txt"

declare -A samples=()
add() { samples[$1]="${samples[$1]:-} $2"; }
measure() {  # LABEL BINARY
    local label=$1 bin=$2 out start end
    out=$($bin bench train --configs a,b,c --steps 6 --warmup 2 --threads 2)
    for c in a b c; do add "$label train $c tok/s" "$(echo "$out" | awk -v c=$c '$1 == c { print $5 }')"; done
    out=$($bin tokenizer info --tokenizer gpt2 --input "$work/all.txt" --top 0)
    add "$label gpt2 encode MB/s" "$(echo "$out" | grep -o '[0-9.]* MB/s' | grep -o '^[0-9.]*')"
    rm -rf "$work/prepared-$label"
    start=$(date +%s.%N)
    $bin data prepare $corpus/kjv_bible.txt $corpus/web_bible.txt $corpus/shakespeare.txt $corpus/milton.txt \
        $corpus/jargon.txt --split-on blank-line --tokenizer "$work/tok.json" --output "$work/prepared-$label" \
        --threads 2 > /dev/null
    end=$(date +%s.%N)
    add "$label data prepare s" "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')"
    out=$($bin bench generate --python none --rounds 1 --repeats 3 --threads 2 2> /dev/null)
    add "$label decode tok/s" "$(echo "$out" | awk '$1 == "fledge" && $2 ~ /^[0-9]/ { print $2 }')"
}
for round in $(seq "$rounds"); do
    if [ $((round % 2)) = 1 ]; then measure checked "$new"; measure unchecked "$old"; else measure unchecked "$old"; measure checked "$new"; fi
    echo "round $round/$rounds done" >&2
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
printf '%-22s %12s %12s %8s\n' measure checked unchecked ratio
json="{"
for m in "train a tok/s" "train b tok/s" "train c tok/s" "gpt2 encode MB/s" "data prepare s" "decode tok/s"; do
    c=$(echo "${samples[checked $m]}" | median)
    u=$(echo "${samples[unchecked $m]}" | median)
    if [ "$m" = "data prepare s" ]; then r=$(awk -v a="$u" -v b="$c" 'BEGIN { printf "%.3f", a / b }')
    else r=$(awk -v a="$c" -v b="$u" 'BEGIN { printf "%.3f", a / b }'); fi
    printf '%-22s %12s %12s %7sx\n' "$m" "$c" "$u" "$r"
    json+="\"${m// /_}\": {\"checked\": $c, \"unchecked\": $u, \"speed_ratio\": $r}, "
done
echo "(ratio > 1: the checked build is faster; per-round samples: checked/unchecked)"
for key in "${!samples[@]}"; do echo "  $key:${samples[$key]}"; done | sort
echo "${json%, }}"
