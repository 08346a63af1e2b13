// Launches the fused attention kernels of attention.cuh (f16 and bf16,
// head dims 64 and 128) for flash_attention and its backward.
#include "attention.cuh"

using namespace nb_flash;

namespace {

// ---- launching ----

template <typename K>
nb_status launch(const char *fn, const nb_cuda_ctx &ctx, K kernel, int64_t blocks, int warps,
                 size_t shared_bytes, const attention_params &p, int tiles) {
    if (blocks == 0) return NB_OK;
    NB_CHECK(blocks <= INT32_MAX, NB_ERR_UNSUPPORTED, "%s: %lld blocks exceed the grid", fn,
             (long long)blocks);
    NB_CUDA_TRY(fn, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)shared_bytes));
    kernel<<<(unsigned)blocks, warps * 32, shared_bytes, ctx.handle>>>(p, tiles);
    return nb__cuda_launched(fn);
}

int64_t tiles_of(int64_t n, int64_t tile) { return (n + tile - 1) / tile; }

template <typename T, int D, bool DROPOUT>
nb_status forward(const char *fn, const nb_cuda_ctx &ctx, const attention_params &p, int64_t bh) {
    int64_t tiles = tiles_of(p.sq, QUERY_BLOCK);
    return launch(fn, ctx, attention_forward<T, D, DROPOUT>, bh * tiles, WARPS,
                  forward_shared<T, D>, p, (int)tiles);
}

// The deterministic backward (seven products: dQ in a pass of its own that
// recomputes S and dP), or with determinism off FlashAttention-2's five
// products, dQ added into an f32 buffer with atomics by the dK/dV pass and
// converted at the end.
template <typename T, int D, bool DROPOUT>
nb_status backward(const char *fn, const nb_cuda_ctx &ctx, attention_params p, int64_t bh,
                   int64_t kv_heads) {
    int64_t row_count = bh * p.sq;
    attention_row_deltas<T, D><<<(unsigned)tiles_of(row_count, 8), 256, 0, ctx.handle>>>(p, row_count);
    NB_TRY(nb__cuda_launched(fn));
    int64_t query_tiles = tiles_of(p.sq, QUERY_BLOCK), key_tiles = tiles_of(p.sk, KEY_BLOCK);
    if (nb_deterministic_algorithms_enabled()) {
        NB_TRY(launch(fn, ctx, attention_backward_dq<T, D, DROPOUT>, bh * query_tiles, WARPS,
                      dq_shared<T, D>, p, (int)query_tiles));
        return launch(fn, ctx, attention_backward_dkdv<T, D, DROPOUT, false>, kv_heads * key_tiles,
                      WARPS, dkdv_shared<T, D>, p, (int)key_tiles);
    }
    size_t accum_bytes = sizeof(float) * (size_t)(row_count * D);
    void *block;
    NB_TRY(nb__cuda_scratch(fn, &ctx, accum_bytes, (void **)&p.dq_accum, &block));
    cudaError_t zeroed = cudaMemsetAsync(p.dq_accum, 0, accum_bytes, ctx.handle);
    nb_status status = zeroed == cudaSuccess ? NB_OK : nb__cuda_error(fn, zeroed, "cudaMemsetAsync");
    if (status == NB_OK)
        status = launch(fn, ctx, attention_backward_dkdv<T, D, DROPOUT, true>, kv_heads * key_tiles, WARPS,
                        fused_dkdv_shared<T, D>, p, (int)key_tiles);
    if (status == NB_OK && row_count > 0) {
        attention_dq_from_accum<T><<<(unsigned)tiles_of(row_count * D / 8, 256), 256, 0, ctx.handle>>>(
            p, row_count * D);
        status = nb__cuda_launched(fn);
    }
    nb__cuda_free(p.dq_accum, accum_bytes, nb_cuda(ctx.device), block);
    return status;
}

template <typename T, int D, bool DROPOUT>
nb_status run(const char *fn, const nb_cuda_ctx &ctx, const attention_params &p, bool is_forward,
              int64_t bh, int64_t kv_heads) {
    return is_forward ? forward<T, D, DROPOUT>(fn, ctx, p, bh)
                      : backward<T, D, DROPOUT>(fn, ctx, p, bh, kv_heads);
}

template <typename T>
nb_status run_typed(const char *fn, const nb_cuda_ctx &ctx, const attention_params &p,
                    bool is_forward, int64_t bh, int64_t kv_heads, int64_t d) {
    bool drop = p.dropout > 0;
    if (d == 64)
        return drop ? run<T, 64, true>(fn, ctx, p, is_forward, bh, kv_heads)
                    : run<T, 64, false>(fn, ctx, p, is_forward, bh, kv_heads);
    return drop ? run<T, 128, true>(fn, ctx, p, is_forward, bh, kv_heads)
                : run<T, 128, false>(fn, ctx, p, is_forward, bh, kv_heads);
}

bool aligned16(const void *p) { return (uintptr_t)p % 16 == 0; }

} // namespace

// forward in: q, k, v, lse (written), mask; out: o.
// backward in: dout, q, k, v, o, lse, mask, dk, dv (written); out: dq.
nb_status nb__cuda_attention(const nb_op_args *args) {
    const char *fn = "nb_flash_attention";
    bool is_forward = args->op == NB_OP_FLASH_ATTENTION;
    const nb_tensor *const *in = is_forward ? args->in : args->in + 1;
    const nb_tensor *q = in[0], *k = in[1], *v = in[2], *mask = is_forward ? in[4] : in[5];
    int64_t d = q->shape[3];
    NB_CHECK(d == v->shape[3] && (d == 64 || d == 128), NB_ERR_UNSUPPORTED,
             "%s: the CUDA kernel takes head dims 64 and 128 (both alike), got %lld and %lld", fn,
             (long long)d, (long long)v->shape[3]);
    NB_CHECK(q->shape[2] <= INT32_MAX && k->shape[2] <= INT32_MAX, NB_ERR_UNSUPPORTED,
             "%s: sequences longer than 2^31-1: q %s, k %s", fn, nb__tensor_shape_str(q),
             nb__tensor_shape_str(k));
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin(fn, args->out->storage->device.index, &ctx));
    NB_CHECK(ctx.compute_major >= 8, NB_ERR_UNSUPPORTED,
             "%s: the fused kernel needs compute capability 8.0 or newer; device %d has %d.x", fn,
             ctx.device, ctx.compute_major);
    attention_params p = {};
    p.q = nb__data(q), p.k = nb__data(k), p.v = nb__data(v);
    p.heads = (int)q->shape[1], p.kv_heads = (int)k->shape[1];
    p.sq = (int)q->shape[2], p.sk = (int)k->shape[2];
    p.scale = (float)args->attrs.attention.scale, p.dropout = args->attrs.attention.dropout;
    p.causal = args->attrs.attention.causal;
    p.seed = args->attrs.attention.seed, p.offset = args->attrs.attention.offset;
    if (mask) {
        p.mask = nb__data(mask);
        for (int a = 0; a < 4; a++) p.mask_stride[a] = mask->strides[a];
    }
    if (is_forward) {
        p.out = nb__data(args->out);
        p.lse = (float *)nb__data(in[3]);
    } else {
        p.dout = nb__data(args->in[0]), p.o = nb__data(in[3]);
        p.lse = (float *)nb__data(in[4]);
        p.dq = nb__data(args->out), p.dk = nb__data(in[6]), p.dv = nb__data(in[7]);
    }
    const void *rows[] = {p.q, p.k, p.v, is_forward ? p.q : p.dout};
    for (const void *r : rows)
        NB_CHECK(aligned16(r), NB_ERR_INVALID, "%s: q, k, v and dout must start 16-byte aligned", fn);
    int64_t bh = q->shape[0] * q->shape[1], kv_heads = k->shape[0] * k->shape[1];
    void *block = NULL;
    if (!is_forward)
        NB_TRY(nb__cuda_scratch(fn, &ctx, sizeof(float) * (size_t)(bh * p.sq), (void **)&p.delta, &block));
    nb_status status = q->dtype == NB_F16
                           ? run_typed<__half>(fn, ctx, p, is_forward, bh, kv_heads, d)
                           : run_typed<__nv_bfloat16>(fn, ctx, p, is_forward, bh, kv_heads, d);
    if (block) nb__cuda_free(p.delta, sizeof(float) * (size_t)(bh * p.sq), nb_cuda(ctx.device), block);
    return status;
}
