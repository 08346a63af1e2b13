/* DLPack exchange (include/nabla/dlpack.h). An exported tensor is a
 * DLManagedTensor that holds a reference to the nabla tensor and its own
 * copies of shape and strides; an imported one is a tensor over external
 * storage whose release calls the producer's deleter. */
#include <nabla/dlpack.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"

/* DLPack 0.8's kDLBool, which the 0.6 header lacks. */
#define NB_DL_BOOL 6

typedef struct exported {
    DLManagedTensor managed;
    int64_t shape[NB_MAX_DIMS], strides[NB_MAX_DIMS];
    nb_tensor *tensor;
} exported;

static void release_exported(DLManagedTensor *managed) {
    exported *e = managed->manager_ctx;
    nb_release(e->tensor);
    free(e);
}

static DLDataType dl_dtype(nb_dtype dtype) {
    static const DLDataType types[] = {
        [NB_F32] = {kDLFloat, 32, 1}, [NB_F64] = {kDLFloat, 64, 1}, [NB_F16] = {kDLFloat, 16, 1},
        [NB_BF16] = {kDLBfloat, 16, 1}, [NB_I32] = {kDLInt, 32, 1}, [NB_I64] = {kDLInt, 64, 1},
        [NB_U8] = {kDLUInt, 8, 1}, [NB_BOOL] = {NB_DL_BOOL, 8, 1}};
    return types[dtype];
}

nb_status nb_to_dlpack(const nb_tensor *t, DLManagedTensor **out) {
    NB_CHECK(out, NB_ERR_INVALID, "nb_to_dlpack: out is NULL");
    *out = NULL;
    NB_CHECK(t, NB_ERR_INVALID, "nb_to_dlpack: tensor is NULL");
    exported *e = nb__calloc(1, sizeof *e);
    NB_CHECK(e, NB_ERR_OOM, "nb_to_dlpack: out of host memory");
    nb_device device = t->storage->device;
    memcpy(e->shape, t->shape, sizeof e->shape);
    memcpy(e->strides, t->strides, sizeof e->strides);
    e->tensor = nb_retain((nb_tensor *)t);
    e->managed = (DLManagedTensor){
        .dl_tensor = {.data = nb__data(t),
                      .device = {device.type == NB_DEVICE_CUDA ? kDLCUDA : kDLCPU, device.index},
                      .ndim = t->ndim, .dtype = dl_dtype(t->dtype), .shape = e->shape, .strides = e->strides},
        .manager_ctx = e, .deleter = release_exported};
    *out = &e->managed;
    return NB_OK;
}

static nb_status dtype_of_dl(DLDataType type, nb_dtype *dtype) {
    for (int d = 0; d < NB_DTYPE_COUNT; d++) {
        DLDataType t = dl_dtype((nb_dtype)d);
        if (t.code == type.code && t.bits == type.bits && type.lanes == 1) {
            *dtype = (nb_dtype)d;
            return NB_OK;
        }
    }
    return nb__error(NB_ERR_DTYPE, "nb_from_dlpack: DLPack dtype code %u with %u bits and %u lanes has no nabla "
                     "dtype (nabla holds f32, f64, f16, bf16, i32, i64, u8 and bool, one lane)", type.code,
                     type.bits, type.lanes);
}

static nb_status device_of_dl(DLDevice d, nb_device *device) {
    if (d.device_type == kDLCPU || d.device_type == kDLCUDAHost) {
        *device = nb_cpu();
        return NB_OK;
    }
    NB_CHECK(d.device_type == kDLCUDA, NB_ERR_DEVICE, "nb_from_dlpack: DLPack device type %d is neither the CPU "
             "nor a CUDA device", (int)d.device_type);
    *device = nb_cuda(d.device_id);
    return nb__check_device("nb_from_dlpack", *device);
}

/* The bytes the view reaches from its first element (strides >= 0). */
static nb_status extent_of(const DLTensor *dl, int64_t *strides, size_t elem, size_t *nbytes) {
    int64_t last = 0;
    bool empty = false;
    for (int i = 0; i < dl->ndim; i++) {
        NB_CHECK(dl->shape[i] >= 0, NB_ERR_SHAPE, "nb_from_dlpack: negative size %lld in dim %d",
                 (long long)dl->shape[i], i);
        empty = empty || dl->shape[i] == 0;
    }
    nb__contiguous_strides(dl->ndim, dl->shape, strides);
    for (int i = 0; i < dl->ndim; i++) {
        if (dl->strides) strides[i] = dl->strides[i];
        NB_CHECK(strides[i] >= 0, NB_ERR_INVALID, "nb_from_dlpack: dim %d has stride %lld; nabla's views have "
                 "strides >= 0 (copy it first)", i, (long long)strides[i]);
        int64_t reach;
        NB_CHECK(!__builtin_mul_overflow(dl->shape[i] ? dl->shape[i] - 1 : 0, strides[i], &reach) &&
                     !__builtin_add_overflow(last, reach, &last), NB_ERR_OVERFLOW,
                 "nb_from_dlpack: its shape and strides reach past 2^63 elements");
    }
    *nbytes = empty ? 0 : (size_t)(last + 1) * elem;
    return NB_OK;
}

static void release_imported(void *managed) {
    DLManagedTensor *m = managed;
    if (m->deleter) m->deleter(m);
}

nb_status nb_from_dlpack(DLManagedTensor *managed, nb_tensor **out) {
    NB_CHECK(out, NB_ERR_INVALID, "nb_from_dlpack: out is NULL");
    *out = NULL;
    NB_CHECK(managed, NB_ERR_INVALID, "nb_from_dlpack: managed is NULL");
    const DLTensor *dl = &managed->dl_tensor;
    NB_CHECK(dl->ndim >= 0 && dl->ndim <= NB_MAX_DIMS, NB_ERR_SHAPE, "nb_from_dlpack: %d dims, nabla holds at most %d",
             dl->ndim, NB_MAX_DIMS);
    NB_CHECK(dl->ndim == 0 || dl->shape, NB_ERR_INVALID, "nb_from_dlpack: shape is NULL for %d dims", dl->ndim);
    nb_dtype dtype = NB_F32;
    nb_device device = nb_cpu();
    NB_TRY(dtype_of_dl(dl->dtype, &dtype));
    NB_TRY(device_of_dl(dl->device, &device));
    size_t elem = nb_dtype_size(dtype), nbytes = 0;
    int64_t strides[NB_MAX_DIMS];
    NB_TRY(extent_of(dl, strides, elem, &nbytes));
    char *first = (char *)dl->data + dl->byte_offset;
    NB_CHECK(nbytes == 0 || dl->data, NB_ERR_INVALID, "nb_from_dlpack: data is NULL for %zu bytes", nbytes);
    NB_CHECK((uintptr_t)first % elem == 0, NB_ERR_INVALID, "nb_from_dlpack: the first element at %p is not aligned "
             "to its %zu bytes", (void *)first, elem);
    return nb__tensor_external("nb_from_dlpack", first, nbytes, device, dtype, dl->ndim, dl->shape, strides,
                               release_imported, managed, out);
}
