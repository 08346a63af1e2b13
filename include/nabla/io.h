/* Files of named tensors in the safetensors format (the format of Hugging
 * Face's `safetensors` package, which PyTorch, JAX and numpy users read and
 * write): an 8-byte little-endian header length, a JSON header mapping each
 * name to its dtype, shape and byte range, then the raw little-endian data.
 *
 *   nb_named_tensor named[2] = {{"w", w}, {"b", b}};
 *   nb_safetensors_save("model.safetensors", named, 2,
 *                       &(nb_save_options){.metadata = (const char *[]){"step", "100", NULL}});
 *
 *   nb_safetensors *file;
 *   if (nb_safetensors_open("model.safetensors", &file) != NB_OK) ...  // the header, checked
 *   nb_tensor *w2;
 *   nb_safetensors_get(file, "w", nb_cuda(0), &w2);                      // one copy
 *   nb_safetensors_close(file);
 *
 * A save is atomic: the file is written beside the target under a temporary
 * name, flushed to the disk (fsync) and renamed over it, so a crash (of the
 * process or the machine) at any point leaves the old file or the new one. Opening maps the file and
 * checks the whole header before anything is read: the header length, the
 * JSON, each dtype, shape and byte range (in the data, matching dtype and
 * shape, neither overlapping nor leaving holes or trailing bytes), unique
 * names. A bad file is NB_ERR_IO (NB_ERR_UNSUPPORTED for a dtype nabla lacks)
 * with a message naming the file, the tensor and the values; nothing is
 * allocated beyond what the file holds. docs/io.md has the details. */
#ifndef NABLA_IO_H
#define NABLA_IO_H

#include "nn.h"
#include "optim.h"
#include "random.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nb_safetensors nb_safetensors;

/* One tensor of a file, as its header describes it. */
typedef struct nb_safetensors_entry {
    const char *name;  /* valid while the file is open */
    nb_dtype dtype;
    int ndim;
    int64_t shape[NB_MAX_DIMS];
    int64_t offset;    /* of its first byte, from the start of the file */
    int64_t nbytes;
} nb_safetensors_entry;

typedef struct nb_save_options {
    /* The header's "__metadata__": key, value, key, value, ..., NULL. */
    const char *const *metadata;
    /* Skip the flushes to the disk (fsync of the file and its folder): the
     * rename still makes the save atomic for a process that crashes, but
     * after a power cut the file may be missing or empty. Faster where the
     * disk is slow; PyTorch's and the safetensors package's saves do not
     * flush either. */
    bool no_fsync;
} nb_save_options;

/* Writes tensors (any device, dtype and layout) to path; options may be
 * NULL. Names must be unique, non-empty and not "__metadata__". */
nb_status nb_safetensors_save(const char *path, const nb_named_tensor *tensors, int n,
                              const nb_save_options *options);

/* Opens and checks path (the header alone is read; the data is mapped). */
nb_status nb_safetensors_open(const char *path, nb_safetensors **out);
void nb_safetensors_close(nb_safetensors *file); /* NULL is fine */
int nb_safetensors_count(const nb_safetensors *file);
/* The i-th tensor in the order of the data; NULL out of range. */
const nb_safetensors_entry *nb_safetensors_entry_at(const nb_safetensors *file, int i);
/* NULL when the file has no tensor of that name. */
const nb_safetensors_entry *nb_safetensors_find(const nb_safetensors *file, const char *name);
/* The value of a "__metadata__" key, NULL when absent. */
const char *nb_safetensors_metadata(const nb_safetensors *file, const char *key);
/* A new tensor on device holding name's data. */
nb_status nb_safetensors_get(nb_safetensors *file, const char *name, nb_device device, nb_tensor **out);
/* Copies name's data into dst, which must have its shape; its dtype too,
 * unless convert is set (then the values are converted as nb_copy_ does). */
nb_status nb_safetensors_read_into(nb_safetensors *file, const char *name, nb_tensor *dst, bool convert);

/* ---- state dicts: a module's parameters and buffers by dotted path ---- */

typedef struct nb_load_options {
    bool partial;       /* load the names both sides have, report the rest (default: all or an error) */
    bool convert;       /* convert a dtype that differs from the file's (default: an error) */
    char *report;       /* partial: what was skipped, one line each (may be NULL) */
    size_t report_size;
} nb_load_options;

/* Writes m's parameters and buffers ("blocks.3.attn.qkv.weight",
 * "bn1.running_mean"; PyTorch's state_dict names for the same model). */
nb_status nb_module_save(const nb_module *m, const char *path);
/* Reads them back into m's tensors (options may be NULL). Strict by default:
 * missing and unexpected names and shape or dtype mismatches are one error
 * naming them all, and m is left as it was. */
nb_status nb_module_load(nb_module *m, const char *path, const nb_load_options *options);

/* ---- checkpoints: what a resumed run needs, in one file ---- */

typedef struct nb_checkpoint {
    nb_module *model;                /* "model.<name>" */
    nb_optimizer *const *optimizers; /* "optim.<param name>.<state>", and their hyper-parameters */
    int n_optimizers;
    nb_generator *const *generators; /* their seeds and offsets ("rng.<i>"); an entry NULL: the default */
    int n_generators;
    int64_t step;                  /* the caller's position: saved, and set by a load */
    const char *const *metadata;   /* more "__metadata__" strings: key, value, ..., NULL (save only) */
} nb_checkpoint;

nb_status nb_checkpoint_save(const char *path, const nb_checkpoint *checkpoint);
/* Restores everything checkpoint names (strictly: the model's names and
 * shapes, each optimizer's kind and parameters must match the file's; they
 * are checked before anything is written). */
nb_status nb_checkpoint_load(const char *path, nb_checkpoint *checkpoint);

#ifdef __cplusplus
}
#endif
#endif
