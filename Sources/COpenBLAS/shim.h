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
#endif
