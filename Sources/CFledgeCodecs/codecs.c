// See fledge_codecs.h.
#include "fledge_codecs.h"
#include <dlfcn.h>
#include <string.h>
#include <zlib.h>

int fledge_gunzip(const uint8_t *input, size_t length, uint8_t *output, size_t capacity, size_t *produced) {
    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit2(&s, 15 + 32) != Z_OK) return FLEDGE_CODEC_CORRUPT;  // 15 + 32: gzip or zlib header
    s.next_in = (Bytef *)input;
    s.avail_in = (uInt)length;
    s.next_out = output;
    s.avail_out = (uInt)capacity;
    int status = inflate(&s, Z_FINISH);
    *produced = s.total_out;
    inflateEnd(&s);
    if (status == Z_STREAM_END) return FLEDGE_CODEC_OK;
    if (status == Z_BUF_ERROR && s.avail_out == 0) return FLEDGE_CODEC_TOO_LARGE;
    return FLEDGE_CODEC_CORRUPT;
}

static void *open_first(const char *a, const char *b) {
    void *handle = dlopen(a, RTLD_NOW | RTLD_LOCAL);
    return handle ? handle : dlopen(b, RTLD_NOW | RTLD_LOCAL);
}

typedef int (*snappy_length_fn)(const char *, size_t, size_t *);
typedef int (*snappy_uncompress_fn)(const char *, size_t, char *, size_t *);

int fledge_unsnappy(const uint8_t *input, size_t length, uint8_t *output, size_t capacity, size_t *produced) {
    static void *handle;
    static snappy_length_fn get_length;
    static snappy_uncompress_fn uncompress;
    if (!handle) {
        handle = open_first("libsnappy.so.1", "libsnappy.so");
        if (!handle) return FLEDGE_CODEC_NO_LIBRARY;
        get_length = (snappy_length_fn)dlsym(handle, "snappy_uncompressed_length");
        uncompress = (snappy_uncompress_fn)dlsym(handle, "snappy_uncompress");
    }
    if (!get_length || !uncompress) return FLEDGE_CODEC_NO_LIBRARY;
    size_t size = 0;
    if (get_length((const char *)input, length, &size) != 0) return FLEDGE_CODEC_CORRUPT;
    if (size > capacity) return FLEDGE_CODEC_TOO_LARGE;
    *produced = capacity;
    if (uncompress((const char *)input, length, (char *)output, produced) != 0) return FLEDGE_CODEC_CORRUPT;
    return FLEDGE_CODEC_OK;
}

typedef size_t (*zstd_decompress_fn)(void *, size_t, const void *, size_t);
typedef unsigned (*zstd_is_error_fn)(size_t);

int fledge_unzstd(const uint8_t *input, size_t length, uint8_t *output, size_t capacity, size_t *produced) {
    static void *handle;
    static zstd_decompress_fn decompress;
    static zstd_is_error_fn is_error;
    if (!handle) {
        handle = open_first("libzstd.so.1", "libzstd.so");
        if (!handle) return FLEDGE_CODEC_NO_LIBRARY;
        decompress = (zstd_decompress_fn)dlsym(handle, "ZSTD_decompress");
        is_error = (zstd_is_error_fn)dlsym(handle, "ZSTD_isError");
    }
    if (!decompress || !is_error) return FLEDGE_CODEC_NO_LIBRARY;
    size_t result = decompress(output, capacity, input, length);
    if (is_error(result)) return FLEDGE_CODEC_CORRUPT;
    *produced = result;
    return FLEDGE_CODEC_OK;
}
