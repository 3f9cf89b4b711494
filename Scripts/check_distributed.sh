#!/usr/bin/env bash
# Data-parallel training over Open MPI, end to end (run by `make test`; about a minute):
#   1. equivalence: `mpirun -n 2` × batch 4 against one process × batch 8, and against batch 4 × accumulation 2,
#      over 20 steps: losses and final weights within 1e-5 (the sums run in another order, so not bit for bit);
#   2. `--processes 2` starts mpirun itself; the run resumes in one process (same global batch); 3 processes
#      are refused (a global batch of 8 does not split in 3);
#   3. a rank killed with kill -9 stops the job within seconds, naming the rank; latest/ is intact and
#      `--resume` continues; Ctrl-C on `--processes` stops every rank cleanly and saves latest/;
#   4. a rank that hangs (SIGSTOP) makes the others stop after --collective-timeout, with a message;
#   5. ranks started with different settings, data or builds are refused, naming the rank and what differs;
#   6. more ranks than the data has windows for; mpirun missing; MPI's library missing;
#   7. two hosts (network namespaces, one rank each, TCP): bit-identical to one host; an unreachable host.
set -euo pipefail
cd "$(dirname "$0")/.."
fledge=$(realpath "${FLEDGE:-.build/release/fledge}")
if ! command -v mpirun > /dev/null; then
    echo "check_distributed: skipped: Open MPI's mpirun is not installed (Debian: apt-get install openmpi-bin libopenmpi-dev)"
    exit 0
fi
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none  # containers often forbid the cross-memory attach
tmp=$(mktemp -d)
trap 'pkill -9 -f "$tmp/" 2> /dev/null || true; rm -rf "$tmp"' EXIT
fail() { echo "check_distributed: FAILED: $*" >&2; exit 1; }
ok() { echo "check_distributed: ok: $*"; }
step_of() { grep -o '"step" : [0-9]*' "$1/latest/trainer-state.json" | grep -o '[0-9]*$'; }
mpi=(mpirun --bind-to none --oversubscribe)

head -c 300000 data/shakespeare/shakespeare.txt > "$tmp/text.txt"
"$fledge" tokenizer train --input "$tmp/text.txt" --vocab-size 512 --output "$tmp/tok.json" > /dev/null
"$fledge" data prepare "$tmp/text.txt" --split-on blank-line --tokenizer "$tmp/tok.json" --output "$tmp/data" \
    > /dev/null
tiny=(--data "$tmp/data" --layers 2 --width 64 --heads 4 --context 64 --eval-every 10 --eval-batches 2
    --sample-tokens 0 --threads 1 --seed 7 --dropout 0)

# 1. Two ranks × 4 = one process × 8 = one process × 4 × accumulation 2.
"${mpi[@]}" -n 2 "$fledge" train "${tiny[@]}" --run "$tmp/ranks2" --batch-size 4 --steps 20 > "$tmp/ranks2.log" 2>&1 ||
    fail "mpirun -n 2 fledge train: $(tail -5 "$tmp/ranks2.log")"
grep -q "processes: 2 ranks over Open MPI" "$tmp/ranks2.log" || fail "rank 0 did not say it trains with 2 ranks"
grep -q "all-reduce: .* ms per update" "$tmp/ranks2.log" || fail "rank 0 did not report the all-reduce's share"
[ "$(grep -c 'validation loss' "$tmp/ranks2.log")" = 3 ] || fail "the other rank printed too (or rank 0 too little)"
"$fledge" train "${tiny[@]}" --run "$tmp/batch8" --batch-size 8 --steps 20 > /dev/null
"$fledge" train "${tiny[@]}" --run "$tmp/accumulate" --batch-size 4 --accumulation 2 --steps 20 > /dev/null
python3 Scripts/compare_runs.py "$tmp/ranks2" "$tmp/batch8" > "$tmp/cmp1" || fail "2 ranks vs batch 8: $(cat "$tmp/cmp1")"
python3 Scripts/compare_runs.py "$tmp/ranks2" "$tmp/accumulate" > "$tmp/cmp2" ||
    fail "2 ranks vs accumulation 2: $(cat "$tmp/cmp2")"
diff <(grep '"eval"' "$tmp/ranks2/metrics.jsonl" | sed 's/"elapsed":[0-9.e-]*,//') \
    <(grep '"eval"' "$tmp/batch8/metrics.jsonl" | sed 's/"elapsed":[0-9.e-]*,//') > /dev/null ||
    fail "2 ranks' validation losses differ from one process's over the same windows"
ok "2 ranks × batch 4 = 1 process × batch 8: $(cat "$tmp/cmp1"); vs accumulation 2: $(cat "$tmp/cmp2" | cut -d: -f2-)"

# 2. --processes starts mpirun; resume in one process at the same global batch; 3 processes refused.
"$fledge" train "${tiny[@]}" --run "$tmp/shortcut" --batch-size 4 --steps 10 --processes 2 > "$tmp/shortcut.log" 2>&1 ||
    fail "--processes 2: $(tail -5 "$tmp/shortcut.log")"
grep -q "starting 2 processes: .*mpirun -n 2" "$tmp/shortcut.log" || fail "--processes did not say how it started mpirun"
"$fledge" train --resume "$tmp/shortcut" --steps 20 --threads 1 > "$tmp/resume1.log" 2>&1 ||
    fail "resuming a 2-rank run in one process: $(tail -3 "$tmp/resume1.log")"
grep -q "continues with 1 × 8, the same global batch" "$tmp/resume1.log" || fail "the resume did not say how it splits the batch"
python3 Scripts/compare_runs.py "$tmp/shortcut" "$tmp/batch8" > "$tmp/cmp3" || fail "2 ranks then 1 process vs 1 process: $(cat "$tmp/cmp3")"
if "$fledge" train --resume "$tmp/shortcut" --steps 30 --processes 3 > "$tmp/three.log" 2>&1; then
    fail "a global batch of 8 was split over 3 processes"
fi
grep -q "global batch of 8 sequences .* cannot be shared equally by 3 processes" "$tmp/three.log" ||
    fail "3 processes: $(tail -3 "$tmp/three.log")"
ok "--processes 2, then resumed in 1 process ($(cut -d: -f2- "$tmp/cmp3")); 3 processes refused"

# 3. kill -9 one rank: the job stops within seconds, the message names the rank, latest/ resumes.
"${mpi[@]}" -n 2 "$fledge" train "${tiny[@]}" --run "$tmp/killed" --batch-size 4 --steps 1000000 \
    --checkpoint-every 20 --eval-every 100000 > "$tmp/killed.log" 2>&1 &
launcher=$!
for _ in $(seq 100); do [ -f "$tmp/killed/latest/trainer-state.json" ] && break; sleep 0.2; done
[ -f "$tmp/killed/latest/trainer-state.json" ] || fail "the 2-rank run saved no checkpoint: $(tail -3 "$tmp/killed.log")"
rank1=""
for pid in $(pgrep -f "run $tmp/killed"); do
    if tr '\0' '\n' < "/proc/$pid/environ" 2> /dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then rank1=$pid; fi
done
[ -n "$rank1" ] || fail "rank 1 not found"
start=$(date +%s.%N)
kill -9 "$rank1"
wait "$launcher" && fail "mpirun exited 0 after a rank was killed"
seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
awk -v s="$seconds" 'BEGIN { exit !(s < 10) }' || fail "the job took $seconds s to stop after rank 1 was killed"
grep -q "process rank 1 .* exited on signal 9" "$tmp/killed.log" || fail "no message named rank 1: $(tail -5 "$tmp/killed.log")"
pgrep -f "run $tmp/killed" > /dev/null && fail "a rank outlived the job"
step=$(step_of "$tmp/killed")
"${mpi[@]}" -n 2 "$fledge" train --resume "$tmp/killed" --steps $((step + 10)) > "$tmp/resumed.log" 2>&1 ||
    fail "--resume after the kill: $(tail -3 "$tmp/resumed.log")"
[ "$(step_of "$tmp/killed")" = $((step + 10)) ] || fail "the resumed run did not reach step $((step + 10))"
ok "kill -9 of rank 1: the job stopped in $seconds s naming rank 1; resumed from step $step to $((step + 10))"

# Ctrl-C on `--processes` (SIGINT to its process group, as a terminal sends it): every rank stops after the
# same update, rank 0 saves latest/, and the command exits 0.
setsid "$fledge" train "${tiny[@]}" --run "$tmp/ctrlc" --batch-size 4 --steps 1000000 --checkpoint-every 100000 \
    --eval-every 100000 --processes 2 > "$tmp/ctrlc.log" 2>&1 &
launcher=$!
for _ in $(seq 100); do grep -q "^speed:" "$tmp/ctrlc.log" && break; sleep 0.2; done
kill -INT -"$launcher"
wait "$launcher" || fail "--processes exited non-zero after Ctrl-C: $(tail -3 "$tmp/ctrlc.log")"
grep -q "interrupted at step [0-9]*: saved $tmp/ctrlc/latest" "$tmp/ctrlc.log" || fail "Ctrl-C: $(tail -3 "$tmp/ctrlc.log")"
ok "Ctrl-C on --processes 2: every rank stopped at step $(step_of "$tmp/ctrlc") and latest/ was saved"

# 4. A rank that hangs: the other stops after the collective timeout, saying why.
"${mpi[@]}" -n 2 "$fledge" train "${tiny[@]}" --run "$tmp/hung" --batch-size 4 --steps 1000000 --checkpoint-every 20 \
    --eval-every 100000 --collective-timeout 3 > "$tmp/hung.log" 2>&1 &
launcher=$!
for _ in $(seq 100); do [ -f "$tmp/hung/latest/trainer-state.json" ] && break; sleep 0.2; done
for pid in $(pgrep -f "run $tmp/hung"); do
    if tr '\0' '\n' < "/proc/$pid/environ" 2> /dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then kill -STOP "$pid"; fi
done
start=$(date +%s.%N)
wait "$launcher" && fail "mpirun exited 0 with a hung rank"
seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
grep -q "rank 0: the other ranks did not answer for 3 s (all-reduce" "$tmp/hung.log" ||
    fail "no timeout message: $(tail -5 "$tmp/hung.log")"
ok "a stopped rank: rank 0 gave up after the 3 s timeout ($seconds s in all) and the job ended"

# 5. Ranks started with different settings are refused.
if "${mpi[@]}" -n 1 "$fledge" train "${tiny[@]}" --run "$tmp/mixed" --batch-size 4 --steps 5 : \
    -n 1 "$fledge" train "${tiny[@]}" --run "$tmp/mixed" --batch-size 4 --steps 5 --lr 2e-3 > "$tmp/mixed.log" 2>&1; then
    fail "ranks with different --lr were accepted"
fi
grep -q "rank 1 differs from rank 0 in the training settings" "$tmp/mixed.log" || fail "mismatch: $(head -3 "$tmp/mixed.log")"
[ -d "$tmp/mixed/latest" ] && fail "a refused job wrote a checkpoint"
ok "ranks with different settings refused: $(grep -o 'rank 1 differs.*' "$tmp/mixed.log")"
# Other data, and another build of fledge (the same binary with one byte appended: another SHA-256).
head -c 200000 data/shakespeare/shakespeare.txt | tail -c 150000 > "$tmp/other.txt"
"$fledge" data prepare "$tmp/other.txt" --split-on blank-line --tokenizer "$tmp/tok.json" --output "$tmp/other" > /dev/null
cp "$fledge" "$tmp/fledge-other" && printf x >> "$tmp/fledge-other"
other=("${tiny[@]}")
other[1]="$tmp/other"  # --data
if "${mpi[@]}" -n 1 "$fledge" train "${tiny[@]}" --run "$tmp/mixed2" --batch-size 4 --steps 5 : \
    -n 1 "$tmp/fledge-other" train "${other[@]}" --run "$tmp/mixed2" --batch-size 4 --steps 5 > "$tmp/mixed2.log" 2>&1; then
    fail "ranks with other data and another build were accepted"
fi
grep -q "rank 1 differs from rank 0 in the fledge program (its build), the data (shards and tokenizer)" "$tmp/mixed2.log" ||
    fail "data and build mismatch: $(head -3 "$tmp/mixed2.log")"
ok "ranks with other data and another build refused: $(grep -o 'rank 1 differs.*' "$tmp/mixed2.log")"

# 6. Too many ranks for the data; no mpirun; no MPI library.
if "${mpi[@]}" -n 3 "$fledge" train "${tiny[@]}" --run "$tmp/many" --batch-size 4000 --steps 5 > "$tmp/many.log" 2>&1; then
    fail "3 ranks × 4000 windows were accepted"
fi
grep -q "fewer than a global batch of 3 ranks × 4000" "$tmp/many.log" || fail "too many ranks: $(head -3 "$tmp/many.log")"
if PATH=/nonexistent "$fledge" train "${tiny[@]}" --run "$tmp/nompirun" --processes 2 > "$tmp/nompirun.log" 2>&1; then
    fail "--processes without mpirun succeeded"
fi
grep -q "needs Open MPI's mpirun, which is not on PATH" "$tmp/nompirun.log" || fail "no mpirun: $(cat "$tmp/nompirun.log")"
OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=0 FLEDGE_MPI_LIBRARY=/nonexistent/libmpi.so \
    "$fledge" train "${tiny[@]}" --run "$tmp/nolib" --steps 5 > "$tmp/nolib.log" 2>&1 && fail "a missing MPI library was accepted"
grep -q "Open MPI's library could not be loaded (/nonexistent/libmpi.so" "$tmp/nolib.log" ||
    fail "a missing MPI library: $(cat "$tmp/nolib.log")"
# mpirun's variables without mpirun: MPI starts alone (1 rank), not the 2 the variables claim.
OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=0 "$fledge" train "${tiny[@]}" --run "$tmp/broken" --steps 5 \
    > "$tmp/broken.log" 2>&1 && fail "a broken MPI start was accepted"
grep -q "MPI started as rank 0 of 1, but mpirun launched rank 0 of 2" "$tmp/broken.log" ||
    fail "a broken MPI start: $(cat "$tmp/broken.log")"
ok "too many ranks, no mpirun, no MPI library, a broken MPI start: clear messages"

# 7. Two hosts: network namespaces joined by a veth pair, one rank in each, MPI over TCP.
if [ "$(id -u)" = 0 ] && command -v ip > /dev/null && command -v unshare > /dev/null; then
    bash Scripts/multihost_netns.sh > "$tmp/multihost.log" 2>&1 || fail "two hosts: $(tail -5 "$tmp/multihost.log")"
    grep '^multihost_netns: ok' "$tmp/multihost.log" | sed 's/^multihost_netns: ok/check_distributed: ok/'
else
    echo "check_distributed: skipped: the two-host launch needs root, iproute2 and unshare (Scripts/multihost_netns.sh)"
fi
