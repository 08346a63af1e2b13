/* Error model: every call returns an nb_status (or NULL for a tensor) and
 * leaves a thread-local message naming the function and the values.
 *
 *   nb_tensor *c = nb_matmul(a, b);
 *   if (!c) fprintf(stderr, "%s\n", nb_last_error());
 *   // "nb_matmul: inner dimensions differ: a is [2,3], b is [4,5]"
 */
#ifndef NABLA_STATUS_H
#define NABLA_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nb_status {
    NB_OK = 0,
    NB_ERR_INVALID,     /* a NULL or otherwise invalid argument */
    NB_ERR_SHAPE,       /* shapes that do not fit the op */
    NB_ERR_DTYPE,       /* a dtype the op does not accept */
    NB_ERR_DEVICE,      /* tensors on different devices, no such device, or a CUDA call failed */
    NB_ERR_INDEX,       /* an index or a dimension out of range */
    NB_ERR_OVERFLOW,    /* a size that does not fit in memory arithmetic */
    NB_ERR_OOM,         /* an allocation failed */
    NB_ERR_UNSUPPORTED, /* no kernel for this op, device and dtype */
    NB_ERR_AUTOGRAD,    /* a misuse of the autograd graph */
    NB_ERR_IO,          /* a file that cannot be read or is corrupt */
    NB_ERR_INTERNAL,    /* a bug in nabla: please report it */
    NB_ERR_DIST,        /* a collective failed: a rank died, stopped answering or disagreed */
    NB_STATUS_COUNT
} nb_status;

/* The message of the last failed call on this thread ("" if none). */
const char *nb_last_error(void);
/* The status of the last failed call on this thread (NB_OK if none). */
nb_status nb_last_status(void);
/* Forgets the last error of this thread. */
void nb_clear_error(void);
/* "NB_ERR_SHAPE" and so on. */
const char *nb_status_name(nb_status status);

#ifdef __cplusplus
}
#endif
#endif
