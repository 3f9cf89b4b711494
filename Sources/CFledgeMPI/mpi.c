// Open MPI through dlopen/dlsym. Open MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are the
// addresses of predefined global objects (mpi.h: OMPI_PREDEFINED_GLOBAL), so they are found by name like the
// functions. MPICH and its derivatives use integer handles and are refused by name.

#include "fledge_mpi.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef void *Handle;

static struct {
    int loaded;
    int (*init_thread)(int *, char ***, int, int *);
    int (*initialized)(int *);
    int (*comm_rank)(Handle, int *);
    int (*comm_size)(Handle, int *);
    int (*comm_set_errhandler)(Handle, Handle);
    int (*allreduce)(const void *, void *, int, Handle, Handle, Handle);
    int (*bcast)(void *, int, Handle, int, Handle);
    int (*barrier)(Handle);
    int (*abort_)(Handle, int);
    int (*finalize)(void);
    int (*error_string)(int, char *, int *);
    int (*library_version)(char *, int *);
    Handle world, float_, double_, byte, sum, errors_return;
    char version[512];
} mpi;

static void say(char *message, size_t capacity, const char *text) {
    if (message && capacity) snprintf(message, capacity, "%s", text);
}

static int failed(int code, const char *call, char *message, size_t capacity) {
    if (code == 0) return 0;
    char text[512] = "";
    int length = 0;
    if (mpi.error_string) mpi.error_string(code, text, &length);
    if (message && capacity) snprintf(message, capacity, "%s failed: %s (MPI error %d)", call, text, code);
    return code;
}

int fledge_mpi_open(const char *library, char *message, size_t capacity) {
    if (mpi.loaded) return 0;
    void *handle = dlopen(library, RTLD_NOW | RTLD_GLOBAL);
    if (!handle) {
        say(message, capacity, dlerror());
        return -1;
    }
    if (!dlsym(handle, "ompi_mpi_comm_world")) {
        say(message, capacity, "this MPI library is not Open MPI (no ompi_mpi_comm_world); Fledge uses Open MPI");
        return -1;
    }
#define FIND(field, name)                                                                                      \
    do {                                                                                                       \
        *(void **)(&mpi.field) = dlsym(handle, name);                                                          \
        if (!mpi.field) {                                                                                      \
            say(message, capacity, "the MPI library lacks " name);                                             \
            return -1;                                                                                         \
        }                                                                                                      \
    } while (0)
    FIND(init_thread, "MPI_Init_thread");
    FIND(initialized, "MPI_Initialized");
    FIND(comm_rank, "MPI_Comm_rank");
    FIND(comm_size, "MPI_Comm_size");
    FIND(comm_set_errhandler, "MPI_Comm_set_errhandler");
    FIND(allreduce, "MPI_Allreduce");
    FIND(bcast, "MPI_Bcast");
    FIND(barrier, "MPI_Barrier");
    FIND(abort_, "MPI_Abort");
    FIND(finalize, "MPI_Finalize");
    FIND(error_string, "MPI_Error_string");
    FIND(library_version, "MPI_Get_library_version");
    FIND(world, "ompi_mpi_comm_world");
    FIND(float_, "ompi_mpi_float");
    FIND(double_, "ompi_mpi_double");
    FIND(byte, "ompi_mpi_byte");
    FIND(sum, "ompi_mpi_op_sum");
    FIND(errors_return, "ompi_mpi_errors_return");
#undef FIND
    int length = 0;
    if (mpi.library_version(mpi.version, &length) != 0) mpi.version[0] = 0;
    char *newline = strchr(mpi.version, '\n');
    if (newline) *newline = 0;
    char *comma = strchr(mpi.version, ',');
    if (comma) *comma = 0;
    mpi.loaded = 1;
    return 0;
}

const char *fledge_mpi_library_version(void) { return mpi.loaded ? mpi.version : ""; }

int fledge_mpi_init(int *rank, int *size, char *message, size_t capacity) {
    if (!mpi.loaded) {
        say(message, capacity, "MPI is not loaded");
        return -1;
    }
    int provided = 0, already = 0;
    mpi.initialized(&already);
    if (!already) {
        int code = mpi.init_thread(NULL, NULL, 1 /* MPI_THREAD_FUNNELED */, &provided);
        if (failed(code, "MPI_Init_thread", message, capacity)) return code;
    }
    int code = mpi.comm_set_errhandler(mpi.world, mpi.errors_return);
    if (failed(code, "MPI_Comm_set_errhandler", message, capacity)) return code;
    code = mpi.comm_rank(mpi.world, rank);
    if (failed(code, "MPI_Comm_rank", message, capacity)) return code;
    code = mpi.comm_size(mpi.world, size);
    return failed(code, "MPI_Comm_size", message, capacity);
}

/// MPI counts are ints: calls over more elements are made in pieces of at most 2^30.
static const long piece = 1L << 30;

static int allreduce(void *values, long count, size_t stride, Handle type, char *message, size_t capacity) {
    if (!mpi.loaded) return failed(-1, "MPI_Allreduce", message, capacity);
    for (long start = 0; start < count; start += piece) {
        long n = count - start < piece ? count - start : piece;
        int code = mpi.allreduce((const void *)1 /* MPI_IN_PLACE */, (char *)values + start * stride, (int)n, type,
                                 mpi.sum, mpi.world);
        if (failed(code, "MPI_Allreduce", message, capacity)) return code;
    }
    return 0;
}

int fledge_mpi_allreduce_sum_float(float *values, long count, char *message, size_t capacity) {
    return allreduce(values, count, sizeof(float), mpi.float_, message, capacity);
}

int fledge_mpi_allreduce_sum_double(double *values, long count, char *message, size_t capacity) {
    return allreduce(values, count, sizeof(double), mpi.double_, message, capacity);
}

int fledge_mpi_broadcast(void *bytes, long count, int root, char *message, size_t capacity) {
    if (!mpi.loaded) return failed(-1, "MPI_Bcast", message, capacity);
    for (long start = 0; start < count; start += piece) {
        long n = count - start < piece ? count - start : piece;
        int code = mpi.bcast((char *)bytes + start, (int)n, mpi.byte, root, mpi.world);
        if (failed(code, "MPI_Bcast", message, capacity)) return code;
    }
    return 0;
}

int fledge_mpi_barrier(char *message, size_t capacity) {
    if (!mpi.loaded) return failed(-1, "MPI_Barrier", message, capacity);
    return failed(mpi.barrier(mpi.world), "MPI_Barrier", message, capacity);
}

void fledge_mpi_abort(int code) {
    if (mpi.loaded) mpi.abort_(mpi.world, code);
    _exit(code);
}

int fledge_mpi_finalize(void) { return mpi.loaded ? mpi.finalize() : 0; }
