/* safetensors files in a build without cJSON: every call says so. */
#include "io.h"

#define NB_NO_CJSON(fn) nb__error(NB_ERR_UNSUPPORTED, "%s: nabla was built without cJSON, which safetensors " \
                                  "files need (apt-get install libcjson-dev, then rebuild)", fn)

nb_status nb_safetensors_save(const char *path, const nb_named_tensor *tensors, int n,
                              const nb_save_options *options) {
    (void)path, (void)tensors, (void)n, (void)options;
    return NB_NO_CJSON("nb_safetensors_save");
}

nb_status nb_safetensors_open(const char *path, nb_safetensors **out) {
    (void)path;
    if (out) *out = NULL;
    return NB_NO_CJSON("nb_safetensors_open");
}

void nb_safetensors_close(nb_safetensors *file) { (void)file; }
int nb_safetensors_count(const nb_safetensors *file) { return (void)file, 0; }
const nb_safetensors_entry *nb_safetensors_entry_at(const nb_safetensors *file, int i) { return (void)file, (void)i, NULL; }
const nb_safetensors_entry *nb_safetensors_find(const nb_safetensors *file, const char *name) {
    return (void)file, (void)name, NULL;
}
const char *nb_safetensors_metadata(const nb_safetensors *file, const char *key) { return (void)file, (void)key, NULL; }

nb_status nb_safetensors_get(nb_safetensors *file, const char *name, nb_device device, nb_tensor **out) {
    (void)file, (void)name, (void)device;
    if (out) *out = NULL;
    return NB_NO_CJSON("nb_safetensors_get");
}

nb_status nb_safetensors_read_into(nb_safetensors *file, const char *name, nb_tensor *dst, bool convert) {
    (void)file, (void)name, (void)dst, (void)convert;
    return NB_NO_CJSON("nb_safetensors_read_into");
}
