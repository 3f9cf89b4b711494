#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build and run Fledge: the CBLAS libraries (OpenBLAS, which the
# build links; Intel MKL from Debian's non-free component, which Fledge prefers at run time when present), and
# strace for the adversarial suite's kill -9 at each rename.
# Idempotent; needs root (or sudo) for apt-get. Set FLEDGE_NO_MKL=1 to skip MKL and its non-free source.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
export DEBIAN_FRONTEND=noninteractive

if ! command -v swift >/dev/null 2>&1; then
    echo "error: the Swift toolchain (6.0 or later) is not on PATH." >&2
    echo "Hint: install it from swift.org (or use a machine that has it), then run this again." >&2
    exit 1
fi

# MKL's libmkl_rt.so is not in the ldconfig cache (no SONAME entry), so look for the file.
has_mkl() { compgen -G '/usr/lib/x86_64-linux-gnu/libmkl_rt.so*' >/dev/null || compgen -G '/usr/lib/libmkl_rt.so*' >/dev/null; }

need=()
[ -e /usr/include/x86_64-linux-gnu/cblas.h ] || [ -e /usr/include/cblas.h ] || need+=(libopenblas-dev)
command -v strace >/dev/null 2>&1 || need+=(strace)  # the adversarial suite's syscall fault injector
# Parquet pages: zlib's header to build; Snappy and Zstandard are loaded at run time.
[ -e /usr/include/zlib.h ] || need+=(zlib1g-dev)
compgen -G '/usr/lib/x86_64-linux-gnu/libsnappy.so.1*' >/dev/null || compgen -G '/usr/lib/*/libsnappy.so.1*' >/dev/null \
    || need+=(libsnappy1v5)
compgen -G '/usr/lib/x86_64-linux-gnu/libzstd.so.1*' >/dev/null || compgen -G '/usr/lib/*/libzstd.so.1*' >/dev/null \
    || need+=(libzstd1)
# Data-parallel training: Open MPI's mpirun and libmpi.so.40 (loaded at run time; the build does not need it).
command -v mpirun >/dev/null 2>&1 || need+=(openmpi-bin)
want_mkl=0
if [ "${FLEDGE_NO_MKL:-0}" != 1 ] && ! has_mkl; then want_mkl=1; fi

if [ "$want_mkl" = 1 ] && [ -f /etc/apt/sources.list.d/debian.sources ] \
    && grep -q '^Components: main$' /etc/apt/sources.list.d/debian.sources; then
    echo "setup: enabling Debian's contrib and non-free components for Intel MKL (libmkl-rt)"
    as_root sed -i 's/^Components: main$/Components: main contrib non-free non-free-firmware/' /etc/apt/sources.list.d/debian.sources
fi
if [ ${#need[@]} -gt 0 ] || [ "$want_mkl" = 1 ]; then
    as_root apt-get update -q >/dev/null
    [ ${#need[@]} -gt 0 ] && as_root apt-get install -y -q "${need[@]}" >/dev/null
    if [ "$want_mkl" = 1 ]; then
        as_root apt-get install -y -q libmkl-rt >/dev/null 2>&1 \
            || echo "setup: MKL is not available here; Fledge will use OpenBLAS."
    fi
fi
echo "setup: ok (BLAS: $(has_mkl && echo 'MKL, with OpenBLAS linked' || echo OpenBLAS))"
