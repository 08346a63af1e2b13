/* IDX files and Fashion-MNIST. An IDX file is: two zero bytes, a type byte
 * (0x08 for unsigned bytes), the number of dims, each dim as a big-endian
 * 32-bit integer, then the values in row-major order. Files are read
 * through zlib, which also reads uncompressed files; a build without zlib
 * reads uncompressed files only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"

#ifdef NABLA_WITH_ZLIB
#include <zlib.h>
typedef gzFile idx_file;
static idx_file idx_open(const char *path) { return gzopen(path, "rb"); }
static int idx_read(idx_file f, void *buf, size_t n) { return gzread(f, buf, (unsigned)n); } /* n < 2^31 */
static const char *idx_error(idx_file f, int *failed) {
    int code;
    const char *message = gzerror(f, &code);
    *failed = code < 0;
    return message;
}
static void idx_close(idx_file f) { gzclose(f); }
#else
typedef FILE *idx_file;
static idx_file idx_open(const char *path) { return fopen(path, "rb"); }
static int idx_read(idx_file f, void *buf, size_t n) { return (int)fread(buf, 1, n, f); }
static const char *idx_error(idx_file f, int *failed) {
    *failed = ferror(f);
    return *failed ? "read error" : "";
}
static void idx_close(idx_file f) { fclose(f); }
#endif

#define NB_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
#define NB_FASHION_MNIST_MEAN 0.2860
#define NB_FASHION_MNIST_STD 0.3530

#define NB_IDX_CHUNK ((size_t)1 << 24) /* bytes per read call: within zlib's unsigned int */

/* Reads up to n bytes in chunks into buf; *got says how many came. */
static nb_status read_some(idx_file file, const char *path, char *buf, size_t n, size_t *got) {
    *got = 0;
    while (*got < n) {
        size_t want = n - *got < NB_IDX_CHUNK ? n - *got : NB_IDX_CHUNK;
        int read = idx_read(file, buf + *got, want);
        if (read <= 0) {
            int failed;
            const char *message = idx_error(file, &failed);
            NB_CHECK(read == 0 && !failed, NB_ERR_IO, "nb_idx_read: %s: unreadable: %s", path, message);
            break;
        }
        *got += (size_t)read;
    }
    return NB_OK;
}

/* Reads exactly n bytes, or fails saying what was read. */
static nb_status read_exact(idx_file file, const char *path, void *buf, size_t n, const char *what) {
    size_t got;
    NB_TRY(read_some(file, path, buf, n, &got));
    NB_CHECK(got == n, NB_ERR_IO, "nb_idx_read: %s: truncated (%s): wanted %zu bytes, got %zu", path,
             what, n, got);
    return NB_OK;
}

static nb_status read_header(idx_file file, const char *path, int *ndim, int64_t *shape) {
    unsigned char magic[4];
    NB_TRY(read_exact(file, path, magic, 4, "the header"));
    NB_CHECK(magic[0] != 0x1f || magic[1] != 0x8b, NB_ERR_IO,
             "nb_idx_read: %s is gzip-compressed and nabla was built without zlib", path);
    NB_CHECK(magic[0] == 0 && magic[1] == 0 && magic[2] == 0x08 && magic[3] >= 1 &&
                 magic[3] <= NB_MAX_DIMS,
             NB_ERR_IO,
             "nb_idx_read: %s: not an IDX file of bytes (header %02x %02x %02x %02x; expected "
             "00 00 08 and 1 to %d dims)", path, magic[0], magic[1], magic[2], magic[3], NB_MAX_DIMS);
    *ndim = magic[3];
    for (int d = 0; d < *ndim; d++) {
        unsigned char b[4];
        NB_TRY(read_exact(file, path, b, 4, "the dims"));
        shape[d] = ((int64_t)b[0] << 24) | ((int64_t)b[1] << 16) | ((int64_t)b[2] << 8) | b[3];
        NB_CHECK(shape[d] > 0 && shape[d] < (1 << 30), NB_ERR_IO,
                 "nb_idx_read: %s: dim %d has size %lld", path, d, (long long)shape[d]);
    }
    return NB_OK;
}

/* The n value bytes into a buffer that doubles as data arrives, so a header
 * that declares more than the file holds costs at most twice what it does
 * hold (a compressed file's length says nothing of its content). */
static nb_status read_values(idx_file file, const char *path, size_t n, char **out) {
    size_t capacity = 0, have = 0;
    char *buffer = NULL;
    nb_status status = NB_OK;
    while (status == NB_OK && have < n) {
        size_t next = capacity ? (capacity < n / 2 ? 2 * capacity : n) : (n < NB_IDX_CHUNK ? n : NB_IDX_CHUNK);
        char *grown = nb__realloc(buffer, next);
        if (!grown) {
            status = nb__error(NB_ERR_OOM, "nb_idx_read: %s: out of host memory for %zu bytes of "
                               "values", path, next);
            break;
        }
        buffer = grown;
        capacity = next;
        size_t got;
        status = read_some(file, path, buffer + have, capacity - have, &got);
        have += got;
        if (status == NB_OK && have < capacity)
            status = nb__error(NB_ERR_IO, "nb_idx_read: %s: truncated: its dims declare %zu bytes of "
                               "values, it holds %zu", path, n, have);
    }
    if (status != NB_OK) free(buffer);
    else *out = buffer;
    return status;
}

static nb_status read_file(idx_file file, const char *path, nb_tensor **out) {
    int ndim = 0;
    int64_t shape[NB_MAX_DIMS], numel;
    NB_TRY(read_header(file, path, &ndim, shape));
    NB_TRY(nb__checked_numel("nb_idx_read", ndim, shape, NB_U8, &numel));
    char *values = NULL;
    NB_TRY(read_values(file, path, (size_t)numel, &values));
    unsigned char extra;
    nb_status status = NB_OK;
    if (idx_read(file, &extra, 1) != 0)
        status = nb__error(NB_ERR_IO, "nb_idx_read: %s: more bytes than its dims %s hold", path,
                           nb__shape_str(ndim, shape));
    if (status == NB_OK) {
        *out = nb_from_host(values, ndim, shape, NB_U8, nb_cpu());
        if (!*out) status = nb__error(nb_last_status(), "nb_idx_read: %s: %s", path, nb_last_error());
    }
    free(values);
    return status;
}

nb_status nb_idx_read(const char *path, nb_tensor **out) {
    NB_CHECK(path && out, NB_ERR_INVALID, "nb_idx_read: %s is NULL", path ? "out" : "path");
    *out = NULL;
    idx_file file = idx_open(path);
    NB_CHECK(file, NB_ERR_IO, "nb_idx_read: cannot open %s", path);
    nb_status status = read_file(file, path, out);
    idx_close(file);
    return status;
}

/* dir/name without .gz when that file exists (a decompressed copy), else
 * dir/name.gz. */
static nb_status read_split(const char *dir, const char *name, nb_tensor **out) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *plain = fopen(path, "rb");
    if (plain) fclose(plain);
    else snprintf(path, sizeof path, "%s/%s.gz", dir, name);
    return nb_idx_read(path, out);
}

/* pixels [N, 28, 28] u8 -> [N, 1, 28, 28] f32, (p / 255 - mean) / std. */
static nb_status normalize(const nb_tensor *pixels, nb_tensor **images) {
    NB_CHECK(pixels->ndim == 3 && pixels->shape[1] == 28 && pixels->shape[2] == 28, NB_ERR_IO,
             "nb_fashion_mnist_load: images have shape %s, expected [N,28,28]",
             nb__tensor_shape_str(pixels));
    nb_scratch s = {0};
    int64_t shape[4] = {pixels->shape[0], 1, 28, 28};
    nb_tensor *x = nb__keep(&s, nb_cast(pixels, NB_F32));
    nb_tensor *scale = nb__keep(&s, nb_scalar(1 / (255 * NB_FASHION_MNIST_STD), NB_F32, nb_cpu()));
    nb_tensor *shift = nb__keep(&s, nb_scalar(NB_FASHION_MNIST_MEAN / NB_FASHION_MNIST_STD, NB_F32, nb_cpu()));
    nb_tensor *y = nb__keep(&s, nb_sub(nb__keep(&s, nb_mul(x, scale)), shift));
    return nb__scratch_finish(&s, nb__keep(&s, nb_reshape(y, 4, shape)), images);
}

static nb_status fashion_mnist_load(const char *dir, bool train, nb_tensor **images,
                                   nb_tensor **labels) {
    NB_CHECK(images && labels, NB_ERR_INVALID, "nb_fashion_mnist_load: an output is NULL");
    *images = *labels = NULL;
    if (!dir) dir = getenv("NABLA_FASHION_MNIST_DIR");
    if (!dir) dir = NB_FASHION_MNIST_DIR;
    const char *prefix = train ? "train" : "t10k";
    char image_name[64], label_name[64];
    snprintf(image_name, sizeof image_name, "%s-images-idx3-ubyte", prefix);
    snprintf(label_name, sizeof label_name, "%s-labels-idx1-ubyte", prefix);
    nb_tensor *pixels = NULL, *bytes = NULL;
    nb_status status = read_split(dir, image_name, &pixels);
    if (status == NB_OK) status = read_split(dir, label_name, &bytes);
    if (status == NB_OK && (bytes->ndim != 1 || bytes->shape[0] != pixels->shape[0]))
        status = nb__error(NB_ERR_IO, "nb_fashion_mnist_load: the %s labels in %s are %s for %lld "
                           "images", prefix, dir, nb__tensor_shape_str(bytes),
                           (long long)pixels->shape[0]);
    if (status == NB_OK) status = normalize(pixels, images);
    if (status == NB_OK) status = nb__result(nb_cast(bytes, NB_I64), labels);
    if (status != NB_OK) {
        nb_release(*images);
        *images = NULL;
    }
    nb_release(pixels);
    nb_release(bytes);
    return status;
}

nb_status nb_fashion_mnist_load(const char *dir, bool train, nb_tensor **images,
                                nb_tensor **labels) {
    const char *outer = nb__enter("nb_fashion_mnist_load");
    nb_status status = fashion_mnist_load(dir, train, images, labels);
    nb__leave(outer);
    return status;
}
