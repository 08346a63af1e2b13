/* Data: IDX files (the MNIST family's format, gzip-compressed or plain),
 * Fashion-MNIST, and shuffled mini-batches.
 *
 *   nb_tensor *images, *labels;
 *   if (nb_fashion_mnist_load(NULL, true, &images, &labels) != NB_OK) ...
 *   nb_batches *batches = nb_batches_create(images, labels, 128, true, false, gen);
 *   nb_tensor *x, *y;
 *   while (nb_batches_take(batches, &x, &y) == NB_OK && x) { ...; nb_release(x); nb_release(y); }
 */
#ifndef NABLA_DATA_H
#define NABLA_DATA_H

#include "random.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads an IDX file of unsigned bytes (type 0x08), plain or gzip-compressed
 * (a build without zlib reads plain files only), into a u8 tensor with the
 * file's dims. A missing, truncated or malformed file is NB_ERR_IO naming
 * the path and the problem. */
nb_status nb_idx_read(const char *path, nb_tensor **out);

/* Fashion-MNIST's training (60000) or test (10000) split from dir (each file
 * read decompressed when present, else as .gz): images
 * [N, 1, 28, 28] f32 normalized with the training set's mean 0.2860 and
 * standard deviation 0.3530 (of pixels / 255), labels [N] i64. dir NULL:
 * $NABLA_FASHION_MNIST_DIR, else /usr/share/datasets/fashion-mnist (Debian's
 * dataset-fashion-mnist). */
nb_status nb_fashion_mnist_load(const char *dir, bool train, nb_tensor **images,
                                nb_tensor **labels);

typedef struct nb_batches nb_batches;
/* Mini-batches of batch_size rows of images and labels (sharing dim 0), in a
 * new random order each epoch when shuffle (from gen, NULL: the default
 * generator); drop_last skips a final short batch. Holds references. */
nb_batches *nb_batches_create(const nb_tensor *images, const nb_tensor *labels, int64_t batch_size,
                              bool shuffle, bool drop_last, nb_generator *gen);
/* The next batch (new references) with NB_OK; at the end of an epoch NB_OK
 * with *images and *labels NULL, after which the next call starts a new
 * epoch; on failure the status (the batch is not consumed). */
nb_status nb_batches_take(nb_batches *batches, nb_tensor **images, nb_tensor **labels);
/* nb_batches_take as a loop condition: true for a batch, false at the end of
 * an epoch and on failure (nb_batches_take tells the two apart). */
bool nb_batches_next(nb_batches *batches, nb_tensor **images, nb_tensor **labels);
/* Makes batches a rank's shard for data parallelism: each take then gives
 * this rank's batch_size rows of the next global batch of world * batch_size
 * rows of the epoch's order, which every rank draws alike from its own gen
 * seeded alike; the ranks between them see the single-process epoch with
 * that global batch. A final short global batch is dropped (drop_last) or
 * filled up from the epoch's first rows (as PyTorch's DistributedSampler
 * pads), so every rank gets full batches (a world of 1 is the plain
 * batches). Call before the first take. */
nb_status nb_batches_shard(nb_batches *batches, int rank, int world);
/* Batches per epoch (-1 and an error for NULL). */
int64_t nb_batches_count(const nb_batches *batches);
void nb_batches_free(nb_batches *batches);

#ifdef __cplusplus
}
#endif
#endif
