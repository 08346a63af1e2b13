/* What the examples share: exiting with nabla's message when a call fails,
 * and a monotonic clock. Define EXAMPLE_NAME (the program's name, for the
 * messages) before including this first. */
#ifndef NABLA_EXAMPLE_H
#define NABLA_EXAMPLE_H

#define _POSIX_C_SOURCE 200809L
#include <nabla/nabla.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* The newline ends a progress line left open with \r. */
#define CHECK(expr)                                                             \
    do {                                                                        \
        if (!(expr)) {                                                          \
            fprintf(stderr, "\n" EXAMPLE_NAME ": %s\n", nb_last_error());       \
            exit(1);                                                            \
        }                                                                       \
    } while (0)

static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

#endif
