/* The thread-local error record behind nb_last_error. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static _Thread_local nb_status last_status = NB_OK;
static _Thread_local char last_message[1024];
static _Thread_local const char *caller; /* the outermost public function running */

nb_status nb__error(nb_status code, const char *fmt, ...) {
    size_t used = 0, caller_len = caller ? strlen(caller) : 0;
    char message[sizeof last_message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    bool named = caller && strncmp(message, caller, caller_len) == 0 && message[caller_len] == ':';
    if (caller && !named) used = (size_t)snprintf(last_message, sizeof last_message, "%s: ", caller);
    snprintf(last_message + used, sizeof last_message - used, "%s", message);
    last_status = code;
    return code;
}

const char *nb__enter(const char *fn) {
    const char *outer = caller;
    if (!caller) caller = fn;
    return outer;
}

void nb__leave(const char *outer) { caller = outer; }

const char *nb_last_error(void) { return last_message; }

nb_status nb_last_status(void) { return last_status; }

void nb_clear_error(void) {
    last_status = NB_OK;
    last_message[0] = '\0';
}

const char *nb_status_name(nb_status status) {
    static const char *const names[NB_STATUS_COUNT] = {
        "NB_OK",           "NB_ERR_INVALID",  "NB_ERR_SHAPE",     "NB_ERR_DTYPE",
        "NB_ERR_DEVICE",   "NB_ERR_INDEX",    "NB_ERR_OVERFLOW",  "NB_ERR_OOM",
        "NB_ERR_UNSUPPORTED", "NB_ERR_AUTOGRAD", "NB_ERR_IO",     "NB_ERR_INTERNAL", "NB_ERR_DIST",
    };
    return (unsigned)status < NB_STATUS_COUNT ? names[status] : "NB_ERR_UNKNOWN";
}

void nb__assert_fail(const char *cond, const char *file, int line) {
    fprintf(stderr, "nabla internal error: %s at %s:%d\n", cond, file, line);
    abort();
}

const char *nb__shape_str(int ndim, const int64_t *shape) {
    static _Thread_local char ring[4][NB_MAX_DIMS * 21 + 3];
    static _Thread_local int next;
    char *buf = ring[next++ % 4];
    size_t used = 0;
    buf[used++] = '[';
    for (int i = 0; i < ndim && i < NB_MAX_DIMS; i++)
        used += (size_t)snprintf(buf + used, sizeof ring[0] - used, i ? ",%lld" : "%lld",
                                 (long long)shape[i]);
    snprintf(buf + used, sizeof ring[0] - used, "]");
    return buf;
}

const char *nb__tensor_shape_str(const nb_tensor *t) { return nb__shape_str(t->ndim, t->shape); }

const char *nb__device_name(nb_device device) {
    static _Thread_local char ring[4][24];
    static _Thread_local int next;
    return nb_device_str(device, ring[next++ % 4], sizeof ring[0]);
}
