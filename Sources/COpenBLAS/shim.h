// CBLAS declarations, and the linked default library: Debian's `libblas.so.3` alternative (OpenBLAS unless
// changed with update-alternatives). FledgeTensor's BLAS.swift may load another CBLAS at run time.
#ifndef FLEDGE_COPENBLAS_SHIM_H
#define FLEDGE_COPENBLAS_SHIM_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1  // for dladdr, to report which library provides cblas_sgemm
#endif
#include <cblas.h>
#include <dlfcn.h>

// A software prefetch for the CPU kernels (Swift has no prefetch of its own): asks for the cache line at `p`
// ahead of its use. Static inline, so the compiler inlines it into the Swift loop.
static inline void fledge_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

// 1 when the build targets AVX-512F (`-target-cpu` reaches this header too) and this CPU has it with the OS
// saving its registers (XCR0 bits for the opmask and zmm state), else 0. The few-rows linear kernel uses 16-lane
// vectors only where this holds: a build for an AVX2 CPU would split each into two registers and spill.
#if defined(__x86_64__) && defined(__AVX512F__)
#include <cpuid.h>
static inline int fledge_cpu_has_avx512(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0;  // OSXSAVE
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 16))) return 0;  // AVX512F
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 0xe6) == 0xe6;
}
#else
static inline int fledge_cpu_has_avx512(void) { return 0; }
#endif
#endif
