// LD_PRELOAD shim that counts heap allocations (malloc, calloc, realloc, posix_memalign, aligned_alloc,
// memalign). `fledge bench train` reads the count through `fledge_allocation_count` before and after its
// timed steps and reports allocations per step; Scripts/check_no_allocation.sh runs it.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static atomic_long count;
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

void *malloc(size_t n) { atomic_fetch_add(&count, 1); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { atomic_fetch_add(&count, 1); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { atomic_fetch_add(&count, 1); return __libc_realloc(p, n); }
int posix_memalign(void **p, size_t a, size_t n) {
    atomic_fetch_add(&count, 1);
    *p = __libc_memalign(a, n);
    return *p ? 0 : 12;
}

void *aligned_alloc(size_t a, size_t n) { atomic_fetch_add(&count, 1); return __libc_memalign(a, n); }
void *memalign(size_t a, size_t n) { atomic_fetch_add(&count, 1); return __libc_memalign(a, n); }

long fledge_allocation_count(void) { return atomic_load(&count); }
