/* libFuzzer target for nb_idx_read: the input is written to a file (the
 * reader takes a path) and read back, plain or, when the input starts with
 * gzip's magic, through zlib. A read must succeed with a tensor of the
 * declared shape holding the file's bytes, or fail with NB_ERR_IO (or
 * NB_ERR_OOM / NB_ERR_OVERFLOW for a declared size past memory), never
 * anything else. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nabla/nabla.h>

#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file("idx", data, size);
    nb_tensor *t = NULL;
    nb_status status = nb_idx_read(path, &t);
    if (status == NB_OK) {
        /* a plain file holds its header, then exactly numel bytes */
        bool gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
        size_t header = 4 + 4 * (size_t)nb_ndim(t);
        if (!t || nb_dtype_of(t) != NB_U8 || (!gzip && header + (size_t)nb_numel(t) != size)) abort();
        if (!gzip && memcmp(nb_data(t), data + header, (size_t)nb_numel(t)) != 0) abort();
    } else if (t || (status != NB_ERR_IO && status != NB_ERR_OOM && status != NB_ERR_OVERFLOW)) {
        abort();
    }
    nb_release(t);
    return 0;
}
