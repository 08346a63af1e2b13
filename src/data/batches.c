/* Mini-batches over a data set: a permutation drawn from the generator at
 * the start of each epoch, and index_select of each batch's rows. */
#include <stdlib.h>

#include "../core/internal.h"

struct nb_batches {
    nb_tensor *images, *labels, *order; /* order: i64 row indices of this epoch */
    int64_t rows, batch_size, next;
    bool shuffle, drop_last;
    nb_generator *gen;
    int rank, world; /* nb_batches_shard; 0 and 1 otherwise */
    bool taken;      /* a take has run */
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
    b->world = 1;
    return b;
}

nb_status nb_batches_shard(nb_batches *b, int rank, int world) {
    NB_CHECK(b, NB_ERR_INVALID, "nb_batches_shard: batches is NULL");
    NB_CHECK(world >= 1 && rank >= 0 && rank < world, NB_ERR_INVALID,
             "nb_batches_shard: needs 0 <= rank < world, got rank %d and world %d", rank, world);
    NB_CHECK(!b->taken, NB_ERR_INVALID, "nb_batches_shard: call it before the first take");
    b->rank = rank;
    b->world = world;
    return NB_OK;
}

int64_t nb_batches_count(const nb_batches *b) {
    if (!b) {
        nb__error(NB_ERR_INVALID, "nb_batches_count: batches is NULL");
        return -1;
    }
    int64_t global = b->batch_size * b->world;
    return b->rows / global + (!b->drop_last && b->rows % global != 0);
}

/* This rank's rows of the global batch at position next of the order, the
 * positions past the end wrapping to its start. */
static nb_tensor *shard_rows(const nb_batches *b) {
    int64_t *positions = nb__malloc((size_t)b->batch_size * sizeof *positions);
    if (!positions) {
        nb__error(NB_ERR_OOM, "out of host memory");
        return NULL;
    }
    for (int64_t j = 0; j < b->batch_size; j++) positions[j] = (b->next + b->rank * b->batch_size + j) % b->rows;
    nb_tensor *at = nb_from_host(positions, 1, &b->batch_size, NB_I64, nb_cpu());
    free(positions);
    nb_tensor *on = at ? nb_to(at, b->order->storage->device) : NULL;
    nb_tensor *rows = on ? nb_index_select(b->order, 0, on) : NULL;
    nb_release(on);
    nb_release(at);
    return rows;
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
    b->taken = true;
    if (!b->order && !start_epoch(b)) return nb_last_status();
    int64_t left = b->rows - b->next, global = b->batch_size * b->world;
    if (left <= 0 || (b->drop_last && left < global)) {
        nb_release(b->order); /* the next call starts a new epoch */
        b->order = NULL;
        return NB_OK;
    }
    int64_t count = left < b->batch_size ? left : b->batch_size;
    nb_tensor *rows = b->world > 1 ? shard_rows(b) : nb_slice(b->order, 0, b->next, b->next + count, 1);
    *images = rows ? nb_index_select(b->images, 0, rows) : NULL;
    *labels = *images ? nb_index_select(b->labels, 0, rows) : NULL;
    nb_release(rows);
    if (!*images || !*labels) { /* the batch is not consumed: the next call retries it */
        nb_release(*images);
        *images = NULL;
        return nb_last_status();
    }
    b->next += b->world > 1 ? global : count;
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
