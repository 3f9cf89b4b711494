// CBLAS through Debian's `libblas.so` alternative (OpenBLAS by default; BLIS or MKL when selected with
// `update-alternatives --config libblas.so.3-x86_64-linux-gnu`). See README, "Choosing the BLAS".
#ifndef FLEDGE_COPENBLAS_SHIM_H
#define FLEDGE_COPENBLAS_SHIM_H
#include <cblas.h>
#include <dlfcn.h>
#endif
