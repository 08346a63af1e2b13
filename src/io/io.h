/* What the files of src/io share. */
#ifndef NABLA_IO_INTERNAL_H
#define NABLA_IO_INTERNAL_H

#include <nabla/io.h>

#include "../core/internal.h"

/* Tests: the k-th file operation of the next saves fails (0: none), and
 * how many such operations ran since (src/io/safetensors.c; builds without
 * cJSON have neither, nor the tests that use them). */
void nb__fail_io_step(int64_t k);
int64_t nb__io_steps_seen(void);

#endif
