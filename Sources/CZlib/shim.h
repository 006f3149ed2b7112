// zlib from Debian's zlib1g-dev, for reading `.npz` archives (numpy.savez / savez_compressed).
#ifndef ONNXC_CZLIB_SHIM_H
#define ONNXC_CZLIB_SHIM_H

#include <stddef.h>
#include <string.h>
#include <zlib.h>

/// Inflates the raw DEFLATE stream `src` (a zip entry's data: no zlib header) into exactly `dst_len` bytes.
/// Returns 0 on success, -1 if the data is corrupt or ends early, -2 if it would inflate to more than `dst_len`
/// bytes, -3 if zlib cannot start. zlib counts in 32-bit units, so both buffers are fed in pieces.
static inline int onnxc_inflate_raw(unsigned char *dst, size_t dst_len, const unsigned char *src, size_t src_len) {
    z_stream stream;
    memset(&stream, 0, sizeof stream);
    if (inflateInit2(&stream, -MAX_WBITS) != Z_OK) return -3;
    const size_t piece = (size_t)1 << 30;
    size_t in_done = 0, out_done = 0;
    unsigned char probe;  /* one byte past the end: data that inflates further than dst_len lands here */
    int probing = 0, status;
    for (;;) {
        if (stream.avail_in == 0 && in_done < src_len) {
            size_t n = src_len - in_done < piece ? src_len - in_done : piece;
            stream.next_in = (Bytef *)(src + in_done);
            stream.avail_in = (uInt)n;
            in_done += n;
        }
        if (stream.avail_out == 0 && !probing) {
            if (out_done < dst_len) {
                size_t n = dst_len - out_done < piece ? dst_len - out_done : piece;
                stream.next_out = dst + out_done;
                stream.avail_out = (uInt)n;
                out_done += n;
            } else {
                stream.next_out = &probe;
                stream.avail_out = 1;
                probing = 1;
            }
        }
        status = inflate(&stream, Z_NO_FLUSH);
        if (probing && stream.avail_out == 0) { inflateEnd(&stream); return -2; }
        if (status != Z_OK) break;  /* Z_STREAM_END, or corrupt / truncated data */
    }
    size_t produced = probing ? dst_len : out_done - stream.avail_out;
    inflateEnd(&stream);
    return status == Z_STREAM_END && produced == dst_len ? 0 : -1;
}

/// CRC-32 (the zip checksum) of `len` bytes, fed to zlib in 1 GiB pieces.
static inline unsigned long onnxc_crc32(const unsigned char *data, size_t len) {
    unsigned long crc = crc32(0L, Z_NULL, 0);
    const size_t piece = (size_t)1 << 30;
    while (len > 0) {
        size_t n = len < piece ? len : piece;
        crc = crc32(crc, data, (uInt)n);
        data += n;
        len -= n;
    }
    return crc;
}

#endif
