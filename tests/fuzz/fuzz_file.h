/* What the libFuzzer targets of file readers share: the readers take a
 * path, so each input is written to a file of this process's own, removed
 * at exit. */
#ifndef NABLA_FUZZ_FILE_H
#define NABLA_FUZZ_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char fuzz_path[96];

static void fuzz_remove_file(void) { unlink(fuzz_path); }

/* The path of a file holding data (the target aborts if it cannot write it). */
static const char *fuzz_input_file(const char *target, const uint8_t *data, size_t size) {
    if (!fuzz_path[0]) {
        snprintf(fuzz_path, sizeof fuzz_path, "/tmp/nabla_fuzz_%s_%d", target, (int)getpid());
        atexit(fuzz_remove_file);
    }
    FILE *f = fopen(fuzz_path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    return fuzz_path;
}

#endif
