#!/usr/bin/env bash
# Speed of `fledge data prepare` on ~57 MB of real text: the shared corpora plus the GCIDE dictionary
# (Debian package dict-gcide, GPL; downloaded with apt-get, not committed). Prints the stage table (seconds
# and share of each stage) and MB/s of input; run it a few times, the machines are noisy.
#   Scripts/bench_data.sh [runs=3] [threads=2]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
threads=${2:-2}
work=${FLEDGE_BENCH_DIR:-/tmp/fledge-bench-data}
mkdir -p "$work/corpus"
if [ ! -s "$work/corpus/gcide.txt" ]; then
    (cd "$work" && apt-get download dict-gcide >/dev/null && dpkg-deb -x dict-gcide_*.deb gcide)
    zcat "$work"/gcide/usr/share/dictd/gcide.dict.dz >"$work/corpus/gcide.txt"
fi
cp ../shared/corpora/*.txt "$work/corpus/"
swift build -c release --product fledge >/dev/null
fledge=.build/release/fledge
[ -s "$work/tokenizer.json" ] || $fledge tokenizer train --input ../shared/corpora/kjv_bible.txt ../shared/corpora/jargon.txt \
    --vocab-size 8192 --output "$work/tokenizer.json" >/dev/null
du -sh "$work/corpus"
for run in $(seq "$runs"); do
    echo "--- run $run"
    $fledge data prepare "$work/corpus" --tokenizer "$work/tokenizer.json" --output "$work/prepared" \
        --split-on blank-line --overwrite --threads "$threads" | grep -vE "^(split +documents|train +[0-9]|validation +[0-9]|near duplicates)|^$"
done
