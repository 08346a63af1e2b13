/* Mini-batches over a data set: a permutation drawn from the generator at
 * the start of each epoch, and index_select of each batch's rows. */
#include <stdlib.h>

#include "../core/internal.h"

struct nb_batches {
    nb_tensor *images, *labels, *order; /* order: i64 row indices of this epoch */
    int64_t rows, batch_size, next;
    bool shuffle, drop_last;
    nb_generator *gen;
};

nb_batches *nb_batches_create(const nb_tensor *images, const nb_tensor *labels, int64_t batch_size,
                              bool shuffle, bool drop_last, nb_generator *gen) {
    if (!images || !labels || images->ndim < 1 || labels->ndim < 1 ||
        images->shape[0] != labels->shape[0] || batch_size < 1) {
        nb__error(NB_ERR_INVALID, "nb_batches_create: needs images and labels with the same dim 0 "
                  "and batch_size >= 1, got %s, %s and %lld", images ? nb__tensor_shape_str(images) : "NULL",
                  labels ? nb__tensor_shape_str(labels) : "NULL", (long long)batch_size);
        return NULL;
    }
    nb_batches *b = nb__calloc(1, sizeof *b);
    if (!b) {
        nb__error(NB_ERR_OOM, "nb_batches_create: out of host memory");
        return NULL;
    }
    b->images = nb_retain((nb_tensor *)images);
    b->labels = nb_retain((nb_tensor *)labels);
    b->rows = images->shape[0];
    b->batch_size = batch_size;
    b->shuffle = shuffle;
    b->drop_last = drop_last;
    b->gen = gen;
    return b;
}

int64_t nb_batches_count(const nb_batches *b) {
    if (!b) {
        nb__error(NB_ERR_INVALID, "nb_batches_count: batches is NULL");
        return -1;
    }
    return b->rows / b->batch_size + (!b->drop_last && b->rows % b->batch_size != 0);
}

static bool start_epoch(nb_batches *b) {
    nb_release(b->order);
    b->order = b->shuffle ? nb_randperm(b->rows, NB_I64, b->images->storage->device, b->gen)
                          : nb_arange(0, (double)b->rows, 1, NB_I64, b->images->storage->device);
    b->next = 0;
    return b->order != NULL;
}

static nb_status take(nb_batches *b, nb_tensor **images, nb_tensor **labels) {
    NB_CHECK(b && images && labels, NB_ERR_INVALID, "nb_batches_take: %s is NULL",
             !b ? "batches" : !images ? "images" : "labels");
    *images = *labels = NULL;
    if (!b->order && !start_epoch(b)) return nb_last_status();
    int64_t left = b->rows - b->next;
    if (left <= 0 || (b->drop_last && left < b->batch_size)) {
        nb_release(b->order); /* the next call starts a new epoch */
        b->order = NULL;
        return NB_OK;
    }
    int64_t count = left < b->batch_size ? left : b->batch_size;
    nb_tensor *rows = nb_slice(b->order, 0, b->next, b->next + count, 1);
    *images = rows ? nb_index_select(b->images, 0, rows) : NULL;
    *labels = *images ? nb_index_select(b->labels, 0, rows) : NULL;
    nb_release(rows);
    if (!*images || !*labels) { /* the batch is not consumed: the next call retries it */
        nb_release(*images);
        *images = NULL;
        return nb_last_status();
    }
    b->next += count;
    return NB_OK;
}

nb_status nb_batches_take(nb_batches *b, nb_tensor **images, nb_tensor **labels) {
    const char *outer = nb__enter("nb_batches_take");
    nb_status status = take(b, images, labels);
    nb__leave(outer);
    return status;
}

bool nb_batches_next(nb_batches *b, nb_tensor **images, nb_tensor **labels) {
    const char *outer = nb__enter("nb_batches_next");
    nb_status status = take(b, images, labels);
    nb__leave(outer);
    return status == NB_OK && *images;
}

void nb_batches_free(nb_batches *b) {
    if (!b) return;
    nb_release(b->images);
    nb_release(b->labels);
    nb_release(b->order);
    free(b);
}
