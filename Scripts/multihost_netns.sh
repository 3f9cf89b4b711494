#!/usr/bin/env bash
# A real two-host launch on one machine: two network namespaces, each a host with its own address and
# hostname (fledge-h1 = 10.77.0.1, fledge-h2 = 10.77.0.2), joined by a veth pair. mpirun runs on h1 and reaches
# h2 the way it reaches a remote machine, through its rsh agent — here a small script that runs the command
# with `ip netns exec` instead of ssh. One rank per host; MPI talks TCP over the veth link only.
# The run is then compared with the same 2 ranks on one host (shared memory): the same sums in the same
# order, so the weights must be bit-identical.
# Needs root (namespaces), iproute2 and unshare; Scripts/check_distributed.sh runs it. About 5 s.
set -euo pipefail
cd "$(dirname "$0")/.."
fledge=$(realpath "${FLEDGE:-.build/release/fledge}")
[ "$(id -u)" = 0 ] || { echo "multihost_netns: needs root (network namespaces)" >&2; exit 1; }
command -v mpirun > /dev/null || { echo "multihost_netns: needs Open MPI's mpirun" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
cleanup() {
    ip netns del fledge-h1 2> /dev/null || true
    ip netns del fledge-h2 2> /dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
cleanup
mkdir -p "$tmp"
fail() { echo "multihost_netns: FAILED: $*" >&2; exit 1; }

# The two hosts and the wire between them.
ip netns add fledge-h1
ip netns add fledge-h2
ip link add veth-h1 type veth peer name veth-h2
ip link set veth-h1 netns fledge-h1
ip link set veth-h2 netns fledge-h2
ip -n fledge-h1 addr add 10.77.0.1/24 dev veth-h1
ip -n fledge-h2 addr add 10.77.0.2/24 dev veth-h2
for host in h1 h2; do
    ip -n "fledge-$host" link set lo up
    ip -n "fledge-$host" link set "veth-$host" up
done

# mpirun's rsh agent: called as `AGENT [OPTIONS] HOST COMMAND...`, it runs COMMAND on HOST — in its namespace,
# with its own hostname (a UTS namespace), as ssh would on a real machine.
cat > "$tmp/netns-rsh" << 'AGENT'
#!/bin/sh
while [ "${1#-}" != "$1" ]; do shift; done
case "$1" in
    10.77.0.1) host=h1 ;;
    10.77.0.2) host=h2 ;;
    *) echo "ssh: connect to host $1 port 22: No route to host" >&2; exit 255 ;;  # as ssh fails
esac
shift
exec ip netns exec "fledge-$host" unshare --uts sh -c "hostname fledge-$host; $*"
AGENT
chmod +x "$tmp/netns-rsh"

head -c 300000 data/shakespeare/shakespeare.txt > "$tmp/text.txt"
"$fledge" tokenizer train --input "$tmp/text.txt" --vocab-size 512 --output "$tmp/tok.json" > /dev/null
"$fledge" data prepare "$tmp/text.txt" --split-on blank-line --tokenizer "$tmp/tok.json" --output "$tmp/data" \
    > /dev/null
tiny=(train --data "$tmp/data" --layers 2 --width 64 --heads 4 --context 64 --eval-every 10 --eval-batches 2
    --sample-tokens 0 --threads 1 --seed 7 --dropout 0 --batch-size 4 --steps 20)

# One rank on each host, TCP over the veth link (the files are shared: both namespaces see this filesystem;
# on real machines the data and run folders must be at the same path on every host, shared or copied).
ip netns exec fledge-h1 unshare --uts sh -c "hostname fledge-h1; exec mpirun -n 2 --host 10.77.0.1:1,10.77.0.2:1 \
    --mca plm_rsh_agent $tmp/netns-rsh --mca btl tcp,self --mca btl_tcp_if_include 10.77.0.0/24 \
    --mca oob_tcp_if_include 10.77.0.0/24 --bind-to none --tag-output \
    sh -c 'echo rank \$OMPI_COMM_WORLD_RANK runs on \$(hostname) >&2; exec $fledge ${tiny[*]} --run $tmp/two-hosts'" \
    > "$tmp/two-hosts.log" 2>&1 || fail "the two-host run: $(tail -20 "$tmp/two-hosts.log")"
grep -q "rank 0 runs on fledge-h1" "$tmp/two-hosts.log" && grep -q "rank 1 runs on fledge-h2" "$tmp/two-hosts.log" ||
    fail "the ranks did not run one per host: $(grep 'runs on' "$tmp/two-hosts.log")"
grep 'runs on\|processes:\|all-reduce:\|done:' "$tmp/two-hosts.log"

# The same job on one host, over shared memory.
OMPI_MCA_btl_vader_single_copy_mechanism=none mpirun -n 2 --bind-to none "$fledge" "${tiny[@]}" \
    --run "$tmp/one-host" > "$tmp/one-host.log" 2>&1 || fail "the one-host run: $(tail -5 "$tmp/one-host.log")"
python3 Scripts/compare_runs.py "$tmp/two-hosts" "$tmp/one-host" --tolerance 0 ||
    fail "the two-host run differs from the one-host run"
echo "multihost_netns: ok: 2 hosts (namespaces) × 1 rank over TCP trained exactly as 2 ranks on one host"

# A host list naming a host that cannot be reached: mpirun says so and stops, no hang.
start=$(date +%s)
if ip netns exec fledge-h1 unshare --uts sh -c "hostname fledge-h1; exec mpirun -n 2 --host 10.77.0.1:1,10.77.0.9:1 \
    --mca plm_rsh_agent $tmp/netns-rsh --mca oob_tcp_if_include 10.77.0.0/24 --bind-to none \
    $fledge ${tiny[*]} --run $tmp/unreachable" > "$tmp/unreachable.log" 2>&1; then
    fail "a job with an unreachable host succeeded"
fi
grep -q "unable to reliably start one or more daemons" "$tmp/unreachable.log" ||
    fail "unreachable host: $(head -20 "$tmp/unreachable.log")"
[ -d "$tmp/unreachable/latest" ] && fail "a job that could not start wrote a checkpoint"
echo "multihost_netns: ok: an unreachable host (10.77.0.9) stopped the launch in $(($(date +%s) - start)) s with mpirun's message"
