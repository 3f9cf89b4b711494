// Open MPI, loaded at run time: the default build and a single-process run need no MPI at all.
// Every function returns 0 on success, or an MPI error code (or -1 before loading) with a message written to
// `message` (at most `capacity` bytes, NUL-terminated). Counts may exceed an MPI `int`: calls are split.

#ifndef FLEDGE_MPI_H
#define FLEDGE_MPI_H

#include <stddef.h>

/// Loads `library` (a path or soname) with RTLD_GLOBAL (Open MPI's plug-ins resolve symbols from it) and
/// finds the functions and predefined handles Fledge uses. Fails for a library that is not Open MPI.
int fledge_mpi_open(const char *library, char *message, size_t capacity);
/// MPI_Init_thread (funneled: only the training thread calls MPI), errors returned rather than fatal.
int fledge_mpi_init(int *rank, int *size, char *message, size_t capacity);
/// The library's own version line (MPI_Get_library_version), or "" before loading.
const char *fledge_mpi_library_version(void);
int fledge_mpi_allreduce_sum_float(float *values, long count, char *message, size_t capacity);
int fledge_mpi_allreduce_sum_double(double *values, long count, char *message, size_t capacity);
int fledge_mpi_broadcast(void *bytes, long count, int root, char *message, size_t capacity);
int fledge_mpi_barrier(char *message, size_t capacity);
/// MPI_Abort on the world communicator: every rank of the job stops. Does not return.
void fledge_mpi_abort(int code);
int fledge_mpi_finalize(void);

#endif
