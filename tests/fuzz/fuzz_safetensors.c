/* libFuzzer target for nb_safetensors_open and nb_safetensors_get: the
 * input is written to a file (the loader maps a path) and opened. An open
 * must succeed with entries that tile the data exactly, each readable with
 * the file's bytes (BOOL entries may hold bytes that are no bool: NB_ERR_IO),
 * or fail with NB_ERR_IO or NB_ERR_UNSUPPORTED (NB_ERR_OOM past memory),
 * never anything else. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nabla/nabla.h>

#include "fuzz_file.h"

static void check_entries(nb_safetensors *f, const uint8_t *data, size_t size) {
    uint64_t length = 0;
    memcpy(&length, data, sizeof length); /* an open file has its 8 bytes (little-endian hosts) */
    int64_t covered = 0, start = 8 + (int64_t)length;
    for (int i = 0; i < nb_safetensors_count(f); i++) {
        const nb_safetensors_entry *e = nb_safetensors_entry_at(f, i);
        if (!e || e->offset != start + covered || e->nbytes < 0 || nb_safetensors_find(f, e->name) != e) abort();
        covered += e->nbytes;
        nb_tensor *t = NULL;
        nb_status status = nb_safetensors_get(f, e->name, nb_cpu(), &t);
        if (status == NB_OK) {
            if (nb_dtype_of(t) != e->dtype || nb_ndim(t) != e->ndim) abort();
            if (e->nbytes && memcmp(nb_data(t), data + e->offset, (size_t)e->nbytes)) abort();
        } else if (t || !(status == NB_ERR_IO && e->dtype == NB_BOOL) && status != NB_ERR_OOM) {
            abort();
        }
        nb_release(t);
    }
    if (start + covered != (int64_t)size) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file("safetensors", data, size);
    nb_safetensors *f = NULL;
    nb_status status = nb_safetensors_open(path, &f);
    if (status == NB_OK) check_entries(f, data, size);
    else if (f || (status != NB_ERR_IO && status != NB_ERR_UNSUPPORTED && status != NB_ERR_OOM)) abort();
    nb_safetensors_close(f);
    return 0;
}
