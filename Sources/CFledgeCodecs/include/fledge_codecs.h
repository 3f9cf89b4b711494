// Decompression for Parquet pages, from well-kept libraries: zlib (linked; gzip and zlib streams), and Snappy and
// Zstandard loaded at run time (Debian's libsnappy1v5 and libzstd1), so a build and a run that never meets such a
// page need neither. Each function writes at most `capacity` bytes to `output` and the count to `*produced`.
#ifndef FLEDGE_CODECS_H
#define FLEDGE_CODECS_H
#include <stddef.h>
#include <stdint.h>

enum {
    FLEDGE_CODEC_OK = 0,
    FLEDGE_CODEC_CORRUPT = -1,        // the input is not a valid stream of this codec
    FLEDGE_CODEC_TOO_LARGE = -2,      // the output would exceed `capacity`
    FLEDGE_CODEC_NO_LIBRARY = -3      // the codec's shared library is not installed
};

int fledge_gunzip(const uint8_t *input, size_t length, uint8_t *output, size_t capacity, size_t *produced);
int fledge_unsnappy(const uint8_t *input, size_t length, uint8_t *output, size_t capacity, size_t *produced);
int fledge_unzstd(const uint8_t *input, size_t length, uint8_t *output, size_t capacity, size_t *produced);
#endif
