// The host half of the elementwise engine (src/cuda/map.cuh).
#include "map.cuh"

bool nb__cuda_plan_vector(const nb_map_plan *p, nb_dtype t) {
    int last = p->ndim - 1;
    int64_t lanes = 16 / (int64_t)nb_dtype_size(t);
    if (p->ndim > 1 && p->shape[last] % lanes != 0) return false;
    for (int k = 0; k < p->n_operands; k++) {
        if (p->dtype[k] != t && p->dtype[k] != NB_BOOL) return false;
        int64_t inner = p->strides[k][last];
        if (inner == 0 && k > 0) continue; // broadcast along the row: read once per vector
        if (inner != 1) return false;
        int64_t size = (int64_t)nb_dtype_size(p->dtype[k]);
        if ((uintptr_t)p->base[k] % (uintptr_t)(lanes * size) != 0) return false;
        for (int d = 0; d < last; d++)
            if (p->strides[k][d] % lanes != 0) return false;
    }
    return true;
}
