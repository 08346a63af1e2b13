/* safetensors files (include/nabla/io.h), the format of
 * https://github.com/huggingface/safetensors: 8 bytes of little-endian
 * header length N, N bytes of JSON (an object: for each tensor its "dtype",
 * "shape" and "data_offsets" [begin, end) into the data that follows, and an
 * optional "__metadata__" object of strings), padded with spaces so the
 * data starts 8-byte aligned, then the data, every byte of it belonging to
 * exactly one tensor. The JSON goes through cJSON. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "nabla's safetensors code writes the host's bytes as they are: it needs a little-endian host"
#endif

/* The safetensors package refuses headers past 100 MB; so does nabla. */
#define NB_HEADER_MAX (100 * 1000 * 1000)

static const struct {
    nb_dtype dtype;
    const char *name;
} dtype_names[] = {{NB_F32, "F32"}, {NB_F64, "F64"}, {NB_F16, "F16"}, {NB_BF16, "BF16"},
                   {NB_I32, "I32"}, {NB_I64, "I64"}, {NB_U8, "U8"},   {NB_BOOL, "BOOL"}};
#define NB_DTYPE_NAMES ((int)(sizeof dtype_names / sizeof dtype_names[0]))

/* The format's other dtypes, which nabla has no tensors for. */
static const char *const foreign_dtypes[] = {"I8",     "I16",      "U16",      "U32",     "U64",
                                             "F8_E5M2", "F8_E4M3", "F8_E8M0", "F6_E2M3", "F6_E3M2",
                                             "F4",     "C64"};

static const char *safetensors_dtype(nb_dtype dtype) {
    for (int i = 0; i < NB_DTYPE_NAMES; i++)
        if (dtype_names[i].dtype == dtype) return dtype_names[i].name;
    return NULL;
}

/* ---- injected faults (tests): the k-th file operation of a save fails ---- */

static int64_t io_fail_at, io_seen;

void nb__fail_io_step(int64_t k) {
    io_fail_at = k;
    io_seen = 0;
}

int64_t nb__io_steps_seen(void) { return io_seen; }

static bool io_fault(void) {
    if (++io_seen != io_fail_at) return false;
    errno = EIO;
    return true;
}

/* ---- saving ---- */

typedef struct save_state {
    const char *path;
    char *temp; /* the temporary file beside path */
    int fd;
    char message[256];
} save_state;

static nb_status save_error(save_state *s, const char *what) {
    snprintf(s->message, sizeof s->message, "nb_safetensors_save: %s %s: %s", what,
             s->temp ? s->temp : s->path, strerror(errno));
    return NB_ERR_IO;
}

/* Writes all of n bytes, in pieces a write(2) takes. */
static nb_status write_all(save_state *s, const void *data, size_t n) {
    const char *at = data;
    while (n > 0) {
        size_t piece = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
        ssize_t wrote = io_fault() ? -1 : write(s->fd, at, piece);
        if (wrote < 0 && errno == EINTR) continue;
        if (wrote <= 0) return save_error(s, "cannot write");
        at += wrote;
        n -= (size_t)wrote;
    }
    return NB_OK;
}

/* A number as JSON text, exact for every int64 (cJSON's doubles are not). */
static bool add_integer(cJSON *array, int64_t value) {
    char text[24];
    snprintf(text, sizeof text, "%lld", (long long)value);
    return cJSON_AddItemToArray(array, cJSON_CreateRaw(text));
}

static nb_status check_save_args(const char *path, const nb_named_tensor *tensors, int n,
                                 const nb_save_options *options) {
    const char *fn = "nb_safetensors_save";
    NB_CHECK(path && path[0], NB_ERR_INVALID, "%s: path is NULL or empty", fn);
    NB_CHECK(n >= 0 && (n == 0 || tensors), NB_ERR_INVALID, "%s: %s: needs a tensor array, got %s with n = %d",
             fn, path, tensors ? "an array" : "NULL", n);
    for (int i = 0; i < n; i++) {
        const char *name = tensors[i].name;
        NB_CHECK(memchr(name, 0, sizeof tensors[i].name) && name[0] && strcmp(name, "__metadata__"),
                 NB_ERR_INVALID, "%s: %s: tensor %d's name must be non-empty, NUL-terminated and not "
                 "\"__metadata__\"", fn, path, i);
        NB_CHECK(tensors[i].tensor, NB_ERR_INVALID, "%s: %s: tensor %d (\"%s\") is NULL", fn, path, i, name);
        NB_CHECK(safetensors_dtype(tensors[i].tensor->dtype), NB_ERR_DTYPE, "%s: %s: tensor \"%s\" is %s",
                 fn, path, name, nb_dtype_name(tensors[i].tensor->dtype));
        for (int j = 0; j < i; j++)
            NB_CHECK(strcmp(tensors[j].name, name), NB_ERR_INVALID,
                     "%s: %s: tensors %d and %d are both named \"%s\"", fn, path, j, i, name);
    }
    const char *const *meta = options ? options->metadata : NULL;
    for (int i = 0; meta && meta[i]; i += 2)
        NB_CHECK(meta[i + 1], NB_ERR_INVALID, "%s: %s: metadata key \"%s\" has no value (the list is key, value, "
                 "..., NULL)", fn, path, meta[i]);
    return NB_OK;
}

/* The header: JSON padded with spaces to a multiple of 8 bytes. */
static char *header_text(const nb_named_tensor *tensors, int n, const nb_save_options *options,
                         size_t *length) {
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;
    const char *const *meta = options ? options->metadata : NULL;
    if (ok && meta && meta[0]) {
        cJSON *object = cJSON_AddObjectToObject(root, "__metadata__");
        ok = object != NULL;
        for (int i = 0; ok && meta[i]; i += 2) ok = cJSON_AddStringToObject(object, meta[i], meta[i + 1]) != NULL;
    }
    int64_t begin = 0;
    for (int i = 0; ok && i < n; i++) {
        const nb_tensor *t = tensors[i].tensor;
        int64_t end = begin + nb_numel(t) * (int64_t)nb_dtype_size(t->dtype);
        cJSON *entry = cJSON_AddObjectToObject(root, tensors[i].name);
        ok = entry && cJSON_AddStringToObject(entry, "dtype", safetensors_dtype(t->dtype));
        cJSON *shape = ok ? cJSON_AddArrayToObject(entry, "shape") : NULL;
        cJSON *offsets = shape ? cJSON_AddArrayToObject(entry, "data_offsets") : NULL;
        ok = offsets != NULL;
        for (int d = 0; ok && d < t->ndim; d++) ok = add_integer(shape, t->shape[d]);
        ok = ok && add_integer(offsets, begin) && add_integer(offsets, end);
        begin = end;
    }
    char *json = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!json) return NULL;
    size_t used = strlen(json), padded = (used + 7) / 8 * 8;
    char *text = realloc(json, padded + 1);
    if (!text) {
        free(json);
        return NULL;
    }
    memset(text + used, ' ', padded - used);
    text[padded] = 0;
    *length = padded;
    return text;
}

/* A tensor that is not a contiguous CPU one goes to the file in pieces of
 * whole rows of its first dim, each copied to the host (CUDA through
 * pinned memory): the copy stays near this size. */
#define NB_SAVE_PIECE ((int64_t)64 << 20)

static nb_status write_copied(save_state *s, const nb_tensor *t, size_t nbytes) {
    int64_t rows = t->ndim ? t->shape[0] : 1, row_bytes = rows ? (int64_t)nbytes / rows : 0;
    int64_t per_piece = row_bytes > 0 && row_bytes < NB_SAVE_PIECE ? NB_SAVE_PIECE / row_bytes : 1;
    size_t piece_bytes = (size_t)(per_piece * row_bytes);
    void *buffer = nb__malloc(piece_bytes > 0 ? piece_bytes : 1);
    NB_CHECK(buffer, NB_ERR_OOM, "nb_safetensors_save: out of host memory for a %lld-byte buffer",
             (long long)(per_piece * row_bytes));
    nb_status status = NB_OK;
    bool was = nb_set_grad_enabled(false);
    for (int64_t first = 0; first < rows && status == NB_OK; first += per_piece) {
        int64_t count = rows - first < per_piece ? rows - first : per_piece;
        nb_tensor *piece = t->ndim ? nb_slice(t, 0, first, first + count, 1) : nb_retain((nb_tensor *)t);
        status = piece ? nb_to_host(piece, buffer, (size_t)(count * row_bytes)) : nb_last_status();
        nb_release(piece);
        if (status != NB_OK) snprintf(s->message, sizeof s->message, "nb_safetensors_save: %s", nb_last_error());
        else status = write_all(s, buffer, (size_t)(count * row_bytes));
    }
    nb_set_grad_enabled(was);
    free(buffer);
    return status;
}

static nb_status write_tensors(save_state *s, const nb_named_tensor *tensors, int n, const char *header,
                               size_t header_length) {
    uint64_t length = header_length;
    NB_TRY(write_all(s, &length, sizeof length));
    NB_TRY(write_all(s, header, header_length));
    for (int i = 0; i < n; i++) {
        const nb_tensor *t = tensors[i].tensor;
        size_t nbytes = (size_t)nb_numel(t) * nb_dtype_size(t->dtype);
        if (nbytes == 0) continue;
        if (t->storage->device.type == NB_DEVICE_CPU && nb__is_contiguous(t)) NB_TRY(write_all(s, nb__data(t), nbytes));
        else NB_TRY(write_copied(s, t, nbytes));
    }
    return NB_OK;
}

/* Makes the rename itself durable: fsync of the folder holding path. */
static nb_status sync_folder(save_state *s) {
    char *copy = strdup(s->path);
    NB_CHECK(copy, NB_ERR_OOM, "nb_safetensors_save: out of host memory");
    int dir = io_fault() ? -1 : open(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    if (dir < 0) return save_error(s, "cannot open the folder of");
    int rc = io_fault() ? -1 : fsync(dir);
    close(dir);
    return rc == 0 ? NB_OK : save_error(s, "cannot flush the folder of");
}

/* Creates path.tmp.<pid>.<n> beside path, with the permissions a new file
 * gets (0666 less the umask; mkstemp's would be 0600). */
static nb_status create_temporary(save_state *s) {
    static unsigned counter;
    size_t size = strlen(s->path) + 48;
    s->temp = nb__malloc(size);
    NB_CHECK(s->temp, NB_ERR_OOM, "nb_safetensors_save: %s: out of host memory", s->path);
    for (int attempt = 0; attempt < 100 && s->fd < 0; attempt++) {
        snprintf(s->temp, size, "%s.tmp.%d.%u", s->path, (int)getpid(), __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
        s->fd = io_fault() ? -1 : open(s->temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (s->fd < 0 && errno != EEXIST) break;
    }
    if (s->fd >= 0) return NB_OK;
    snprintf(s->temp, size, "%s.tmp", s->path);
    return save_error(s, "cannot create a temporary file");
}

nb_status nb_safetensors_save(const char *path, const nb_named_tensor *tensors, int n,
                              const nb_save_options *options) {
    NB_TRY(check_save_args(path, tensors, n, options));
    size_t header_length = 0;
    char *header = header_text(tensors, n, options, &header_length);
    NB_CHECK(header, NB_ERR_OOM, "nb_safetensors_save: %s: out of host memory for the header", path);
    save_state s = {.path = path, .fd = -1};
    nb_status status = create_temporary(&s);
    bool flush = !(options && options->no_fsync);
    if (status == NB_OK) status = write_tensors(&s, tensors, n, header, header_length);
    if (status == NB_OK && flush && (io_fault() || fsync(s.fd) != 0)) status = save_error(&s, "cannot flush");
    if (s.fd >= 0) {
        int rc = close(s.fd);
        if (status == NB_OK && (io_fault() || rc != 0)) status = save_error(&s, "cannot close");
    }
    if (status == NB_OK && (io_fault() || rename(s.temp, path) != 0)) status = save_error(&s, "cannot rename");
    else if (status == NB_OK) {
        free(s.temp);
        s.temp = NULL; /* it is path now */
        if (flush) status = sync_folder(&s);
    }
    if (status != NB_OK && s.fd >= 0 && s.temp) unlink(s.temp);
    free(s.temp);
    free(header);
    if (status != NB_OK && s.message[0]) nb__error(status, "%s", s.message);
    return status;
}

/* ---- loading ---- */

struct nb_safetensors {
    char *path;
    int fd;
    const unsigned char *map; /* the whole file */
    int64_t size, data_start;
    cJSON *header;            /* names and metadata point into it */
    cJSON *metadata;          /* an object of strings, or NULL */
    int count;
    nb_safetensors_entry *entries; /* in the order of their data */
};

/* Records a failure of opening f: "nb_safetensors_open: FILE: ...". */
#define BAD_FILE(f, code, ...) open_error((f), (code), __VA_ARGS__)

static nb_status open_error(const nb_safetensors *f, nb_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static nb_status open_error(const nb_safetensors *f, nb_status code, const char *fmt, ...) {
    char detail[320];
    va_list args;
    va_start(args, fmt);
    vsnprintf(detail, sizeof detail, fmt, args);
    va_end(args);
    return nb__error(code, "nb_safetensors_open: %s: %s", f->path, detail);
}

/* An integer of the header: a JSON number that is whole, >= 0 and exact. */
static bool header_integer(const cJSON *item, int64_t *value) {
    if (!cJSON_IsNumber(item)) return false;
    double v = item->valuedouble;
    if (!(v >= 0 && v <= 9007199254740992.0) || v != (double)(int64_t)v) return false;
    *value = (int64_t)v;
    return true;
}

static nb_status parse_dtype(const nb_safetensors *f, const char *name, const cJSON *item, nb_dtype *dtype) {
    if (!cJSON_IsString(item))
        return BAD_FILE(f, NB_ERR_IO, "tensor \"%s\": \"dtype\" must be a string", name);
    for (int i = 0; i < NB_DTYPE_NAMES; i++)
        if (!strcmp(item->valuestring, dtype_names[i].name)) {
            *dtype = dtype_names[i].dtype;
            return NB_OK;
        }
    for (size_t i = 0; i < sizeof foreign_dtypes / sizeof *foreign_dtypes; i++)
        if (!strcmp(item->valuestring, foreign_dtypes[i]))
            return BAD_FILE(f, NB_ERR_UNSUPPORTED, "tensor \"%s\" is %s, which nabla has no tensors for (it "
                            "reads F32, F64, F16, BF16, I32, I64, U8 and BOOL)", name, item->valuestring);
    return BAD_FILE(f, NB_ERR_IO, "tensor \"%s\": unknown dtype \"%.40s\"", name, item->valuestring);
}

/* One tensor's entry: {"dtype": ..., "shape": [...], "data_offsets": [b, e]}. */
static nb_status parse_entry(const nb_safetensors *f, const cJSON *item, nb_safetensors_entry *e) {
    const char *name = item->string;
    e->name = name;
    if (!cJSON_IsObject(item)) return BAD_FILE(f, NB_ERR_IO, "tensor \"%s\" is not a JSON object", name);
    const cJSON *dtype = NULL, *shape = NULL, *offsets = NULL, *field;
    cJSON_ArrayForEach(field, item) {
        const cJSON **slot = !strcmp(field->string, "dtype")          ? &dtype
                             : !strcmp(field->string, "shape")        ? &shape
                             : !strcmp(field->string, "data_offsets") ? &offsets
                                                                      : NULL;
        if (!slot) return BAD_FILE(f, NB_ERR_IO, "tensor \"%s\": unknown field \"%.40s\"", name, field->string);
        if (*slot) return BAD_FILE(f, NB_ERR_IO, "tensor \"%s\": field \"%s\" given twice", name, field->string);
        *slot = field;
    }
    if (!dtype || !shape || !offsets)
        return BAD_FILE(f, NB_ERR_IO, "tensor \"%s\" lacks \"%s\"", name,
                        !dtype ? "dtype" : !shape ? "shape" : "data_offsets");
    NB_TRY(parse_dtype(f, name, dtype, &e->dtype));
    int ndim = cJSON_IsArray(shape) ? cJSON_GetArraySize(shape) : -1;
    if (ndim < 0) return BAD_FILE(f, NB_ERR_IO, "tensor \"%s\": \"shape\" must be an array", name);
    if (ndim > NB_MAX_DIMS)
        return BAD_FILE(f, NB_ERR_UNSUPPORTED, "tensor \"%s\" has %d dims, nabla at most %d", name, ndim, NB_MAX_DIMS);
    e->ndim = ndim;
    int64_t numel = 1, d = 0;
    bool overflow = false;
    cJSON_ArrayForEach(field, shape) {
        if (!header_integer(field, &e->shape[d]))
            return BAD_FILE(f, NB_ERR_IO, "tensor \"%s\": shape entry %lld is not a size", name, (long long)d);
        overflow = overflow || __builtin_mul_overflow(numel, e->shape[d], &numel);
        d++;
    }
    int64_t nbytes;
    overflow = overflow || __builtin_mul_overflow(numel, (int64_t)nb_dtype_size(e->dtype), &nbytes);
    if (overflow)
        return BAD_FILE(f, NB_ERR_IO, "tensor \"%s\": shape %s of %s overflows 64 bits", name,
                        nb__shape_str(ndim, e->shape), nb_dtype_name(e->dtype));
    int64_t begin, end;
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 ||
        !header_integer(cJSON_GetArrayItem(offsets, 0), &begin) || !header_integer(cJSON_GetArrayItem(offsets, 1), &end))
        return BAD_FILE(f, NB_ERR_IO, "tensor \"%s\": \"data_offsets\" must be two byte offsets", name);
    int64_t data_size = f->size - f->data_start;
    if (begin > end || end > data_size)
        return BAD_FILE(f, NB_ERR_IO, "tensor \"%s\": data_offsets [%lld, %lld] are not a range in the %lld bytes "
                        "of data", name, (long long)begin, (long long)end, (long long)data_size);
    if (end - begin != nbytes)
        return BAD_FILE(f, NB_ERR_IO, "tensor \"%s\": data_offsets [%lld, %lld] hold %lld bytes, but shape %s of %s "
                        "needs %lld", name, (long long)begin, (long long)end, (long long)(end - begin),
                        nb__shape_str(ndim, e->shape), nb_dtype_name(e->dtype), (long long)nbytes);
    e->offset = f->data_start + begin;
    e->nbytes = nbytes;
    return NB_OK;
}

static int by_offset(const void *a, const void *b) {
    const nb_safetensors_entry *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every byte of the data belongs to exactly one tensor, each name once. */
static nb_status check_layout(const nb_safetensors *f) {
    int64_t at = f->data_start;
    for (int i = 0; i < f->count; i++) {
        const nb_safetensors_entry *e = &f->entries[i];
        if (e->offset != at)
            return BAD_FILE(f, NB_ERR_IO, "tensor \"%s\" starts at data byte %lld, %s the %s ends", e->name,
                            (long long)(e->offset - f->data_start), e->offset < at ? "before" : "after",
                            i ? "tensor before it" : "header");
        at += e->nbytes;
    }
    if (at != f->size)
        return BAD_FILE(f, NB_ERR_IO, "%lld bytes after the last tensor's data", (long long)(f->size - at));
    const char **names = nb__malloc((size_t)(f->count ? f->count : 1) * sizeof *names);
    NB_CHECK(names, NB_ERR_OOM, "nb_safetensors_open: %s: out of host memory", f->path);
    for (int i = 0; i < f->count; i++) names[i] = f->entries[i].name;
    qsort(names, (size_t)f->count, sizeof *names, by_name);
    nb_status status = NB_OK;
    for (int i = 1; i < f->count && status == NB_OK; i++)
        if (!strcmp(names[i - 1], names[i]))
            status = BAD_FILE(f, NB_ERR_IO, "tensor \"%s\" is named twice", names[i]);
    free(names);
    return status;
}

static nb_status parse_metadata(nb_safetensors *f, cJSON *item) {
    if (f->metadata) return BAD_FILE(f, NB_ERR_IO, "\"__metadata__\" given twice");
    if (!cJSON_IsObject(item)) return BAD_FILE(f, NB_ERR_IO, "\"__metadata__\" is not a JSON object");
    const cJSON *field;
    cJSON_ArrayForEach(field, item) {
        if (!cJSON_IsString(field))
            return BAD_FILE(f, NB_ERR_IO, "\"__metadata__\" entry \"%.40s\" is not a string", field->string);
    }
    f->metadata = item;
    return NB_OK;
}

static nb_status parse_header(nb_safetensors *f) {
    uint64_t length;
    if (f->size < 8) return BAD_FILE(f, NB_ERR_IO, "%lld bytes, fewer than the 8 of the header length", (long long)f->size);
    memcpy(&length, f->map, sizeof length);
    if (length > NB_HEADER_MAX)
        return BAD_FILE(f, NB_ERR_IO, "a header of %llu bytes, past the limit of %d", (unsigned long long)length,
                        NB_HEADER_MAX);
    if (length > (uint64_t)(f->size - 8))
        return BAD_FILE(f, NB_ERR_IO, "the header length %llu runs past the end of the %lld-byte file",
                        (unsigned long long)length, (long long)f->size);
    f->data_start = 8 + (int64_t)length;
    const char *text = (const char *)f->map + 8, *end = NULL;
    f->header = cJSON_ParseWithLengthOpts(text, (size_t)length, &end, false);
    if (!f->header) {
        const char *at = cJSON_GetErrorPtr();
        long where = at && at >= text && at <= text + length ? (long)(at - text) : -1;
        return BAD_FILE(f, NB_ERR_IO, "the header is not JSON (at byte %ld of %llu)", where, (unsigned long long)length);
    }
    for (const char *p = end; p < text + length; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            return BAD_FILE(f, NB_ERR_IO, "bytes after the header's JSON (at byte %ld of %llu)", (long)(p - text),
                            (unsigned long long)length);
    if (!cJSON_IsObject(f->header)) return BAD_FILE(f, NB_ERR_IO, "the header is JSON but not an object");
    int members = cJSON_GetArraySize(f->header);
    f->entries = nb__calloc((size_t)(members ? members : 1), sizeof *f->entries);
    NB_CHECK(f->entries, NB_ERR_OOM, "nb_safetensors_open: %s: out of host memory for %d entries", f->path, members);
    cJSON *item;
    cJSON_ArrayForEach(item, f->header) {
        if (!strcmp(item->string, "__metadata__")) NB_TRY(parse_metadata(f, item));
        else NB_TRY(parse_entry(f, item, &f->entries[f->count++]));
    }
    qsort(f->entries, (size_t)f->count, sizeof *f->entries, by_offset);
    return check_layout(f);
}

nb_status nb_safetensors_open(const char *path, nb_safetensors **out) {
    NB_CHECK(out, NB_ERR_INVALID, "nb_safetensors_open: out is NULL");
    *out = NULL;
    NB_CHECK(path && path[0], NB_ERR_INVALID, "nb_safetensors_open: path is NULL or empty");
    nb_safetensors *f = nb__calloc(1, sizeof *f);
    NB_CHECK(f, NB_ERR_OOM, "nb_safetensors_open: %s: out of host memory", path);
    f->fd = -1;
    f->path = strdup(path);
    nb_status status = f->path ? NB_OK : nb__error(NB_ERR_OOM, "nb_safetensors_open: %s: out of host memory", path);
    struct stat st;
    if (status == NB_OK) {
        f->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (f->fd < 0 || fstat(f->fd, &st) != 0) status = BAD_FILE(f, NB_ERR_IO, "cannot open: %s", strerror(errno));
        else if (!S_ISREG(st.st_mode)) status = BAD_FILE(f, NB_ERR_IO, "not a regular file");
    }
    if (status == NB_OK) {
        f->size = (int64_t)st.st_size;
        void *map = f->size > 0 ? mmap(NULL, (size_t)f->size, PROT_READ, MAP_PRIVATE, f->fd, 0) : NULL;
        if (map == MAP_FAILED) status = BAD_FILE(f, NB_ERR_IO, "cannot map %lld bytes: %s", (long long)f->size,
                                                 strerror(errno));
        else f->map = map;
    }
    if (status == NB_OK) status = parse_header(f);
    if (status != NB_OK) {
        nb_safetensors_close(f);
        return status;
    }
    *out = f;
    return NB_OK;
}

void nb_safetensors_close(nb_safetensors *f) {
    if (!f) return;
    if (f->map) munmap((void *)f->map, (size_t)f->size);
    if (f->fd >= 0) close(f->fd);
    cJSON_Delete(f->header);
    free(f->entries);
    free(f->path);
    free(f);
}

int nb_safetensors_count(const nb_safetensors *f) { return f ? f->count : 0; }

const nb_safetensors_entry *nb_safetensors_entry_at(const nb_safetensors *f, int i) {
    return f && i >= 0 && i < f->count ? &f->entries[i] : NULL;
}

const nb_safetensors_entry *nb_safetensors_find(const nb_safetensors *f, const char *name) {
    if (!f || !name) return NULL;
    for (int i = 0; i < f->count; i++)
        if (!strcmp(f->entries[i].name, name)) return &f->entries[i];
    return NULL;
}

const char *nb_safetensors_metadata(const nb_safetensors *f, const char *key) {
    if (!f || !key || !f->metadata) return NULL;
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(f->metadata, key);
    return item ? item->valuestring : NULL;
}

/* The entry fn reads, its bytes checked where the dtype restricts them. */
static nb_status readable(const char *fn, const nb_safetensors *f, const char *name,
                          const nb_safetensors_entry **out) {
    NB_CHECK(f && name, NB_ERR_INVALID, "%s: %s is NULL", fn, f ? "name" : "file");
    const nb_safetensors_entry *e = nb_safetensors_find(f, name);
    NB_CHECK(e, NB_ERR_INDEX, "%s: %s has no tensor \"%s\"", fn, f->path, name);
    if (e->dtype == NB_BOOL) {
        const unsigned char *bytes = f->map + e->offset;
        for (int64_t i = 0; i < e->nbytes; i++)
            NB_CHECK(bytes[i] <= 1, NB_ERR_IO, "%s: %s: tensor \"%s\" is BOOL but element %lld is byte %u", fn,
                     f->path, name, (long long)i, bytes[i]);
    }
    *out = e;
    return NB_OK;
}

nb_status nb_safetensors_get(nb_safetensors *f, const char *name, nb_device device, nb_tensor **out) {
    const char *fn = "nb_safetensors_get";
    NB_CHECK(out, NB_ERR_INVALID, "%s: out is NULL", fn);
    *out = NULL;
    const nb_safetensors_entry *e = NULL;
    NB_TRY(readable(fn, f, name, &e));
    nb_tensor *t = nb_from_buffer(f->map + e->offset, (size_t)e->nbytes, e->ndim, e->shape, e->dtype, device);
    NB_CHECK(t, nb_last_status(), "%s: %s: tensor \"%s\": %s", fn, f->path, name, nb_last_error());
    *out = t;
    return NB_OK;
}

nb_status nb_safetensors_read_into(nb_safetensors *f, const char *name, nb_tensor *dst, bool convert) {
    const char *fn = "nb_safetensors_read_into";
    NB_CHECK(dst, NB_ERR_INVALID, "%s: dst is NULL", fn);
    const nb_safetensors_entry *e = NULL;
    NB_TRY(readable(fn, f, name, &e));
    NB_CHECK(dst->ndim == e->ndim && !memcmp(dst->shape, e->shape, (size_t)e->ndim * sizeof *e->shape), NB_ERR_SHAPE,
             "%s: %s: tensor \"%s\" is %s in the file but %s here", fn, f->path, name,
             nb__shape_str(e->ndim, e->shape), nb__tensor_shape_str(dst));
    NB_CHECK(convert || dst->dtype == e->dtype, NB_ERR_DTYPE, "%s: %s: tensor \"%s\" is %s in the file but %s here",
             fn, f->path, name, nb_dtype_name(e->dtype), nb_dtype_name(dst->dtype));
    nb__bump_version(dst);
    nb_device device = dst->storage->device;
    if (dst->dtype == e->dtype && nb__is_contiguous(dst)) { /* straight from the map: one copy */
        if (e->nbytes == 0) return NB_OK;
        return nb__backend(device.type)->copy(fn, nb__data(dst), device, f->map + e->offset, nb_cpu(), (size_t)e->nbytes);
    }
    nb_tensor *staged = nb_from_buffer(f->map + e->offset, (size_t)e->nbytes, e->ndim, e->shape, e->dtype, device);
    NB_CHECK(staged, nb_last_status(), "%s: %s: tensor \"%s\": %s", fn, f->path, name, nb_last_error());
    bool was = nb_set_grad_enabled(false);
    nb_status status = nb_copy_(dst, staged);
    nb_set_grad_enabled(was);
    nb_release(staged);
    NB_CHECK(status == NB_OK, status, "%s: %s: tensor \"%s\": %s", fn, f->path, name, nb_last_error());
    return NB_OK;
}
