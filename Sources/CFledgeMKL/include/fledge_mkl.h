// MKL's CPU check, answered by Fledge. See mkl_cpu.c.
#ifndef FLEDGE_MKL_H
#define FLEDGE_MKL_H

/// Whether MKL may choose its kernels by this CPU's instructions on any vendor's CPU (1, FledgeTensor's default)
/// or only on Intel's (0, MKL's own rule; the value before any call). Set it before MKL is loaded.
void fledge_mkl_set_any_vendor(int any);
int fledge_mkl_any_vendor(void);

/// MKL's question "is this an Intel CPU?" (see mkl_cpu.c); exported from the executable so that MKL finds it.
int mkl_serv_intel_cpu_true(void);

#endif
