// MKL chooses its code path in two steps: "is this an Intel CPU?" (its internal mkl_serv_intel_cpu_true), and
// then, on Intel only, which of its kernels this CPU's instructions allow (AVX2, AVX-512, ...). On any other
// CPU it stays on its default code path ("Intel(R) Architecture processors" in MKL_Get_Version; on AMD the
// `def_..._zen` kernels) whatever the CPU can do.
// Its libraries call the check through the dynamic linker, so a definition in the executable, exported to the
// dynamic symbol table (Package.swift: --export-dynamic-symbol), is the one MKL calls. Fledge answers yes on
// every CPU unless FLEDGE_MKL_VENDOR_CHECK=1, so MKL picks its kernels by the instructions the CPU reports
// (on an AMD EPYC with AVX2: its AVX2 kernels). The answer is MKL's own on Intel CPUs, and on others when
// the setting is 0. Measured effect and the peer's: README, "Choosing the BLAS".
#include "fledge_mkl.h"

#include <cpuid.h>
#include <string.h>

static int any_vendor = 0;

void fledge_mkl_set_any_vendor(int any) { any_vendor = any; }

int fledge_mkl_any_vendor(void) { return any_vendor; }

/// 1 when the CPU says "GenuineIntel".
static int cpu_is_intel(void) {
    unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return 0;
    char vendor[13];
    memcpy(vendor, &ebx, 4);
    memcpy(vendor + 4, &edx, 4);
    memcpy(vendor + 8, &ecx, 4);
    vendor[12] = 0;
    return strcmp(vendor, "GenuineIntel") == 0;
}

int mkl_serv_intel_cpu_true(void) { return any_vendor || cpu_is_intel(); }
