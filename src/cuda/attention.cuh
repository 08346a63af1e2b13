// Fused attention on tensor cores (src/ops/attention.c has the formulas),
// f16 and bf16 with f32 accumulation, head dims 64 and 128, compute
// capability 8.0 and up: the FlashAttention-2 scheme (Dao, 2023).
//
// Every product is a warp's 16 rows against a tile in shared memory, on
// mma.sync m16n8k16 with fragments loaded by ldmatrix (PTX ISA, "Warp-level
// matrix fragments for mma.m16n8k16"). A thread holds, for each 8-column
// slice nt of a 16-row tile, the accumulators c[nt][e] at row g + 8 (e / 2)
// and column 8 nt + 2 t + e % 2, where g = lane / 4 and t = lane % 4; the
// four threads of a quad share a row. Two accumulator slices of scores are
// exactly the A fragment of the next product, so probabilities never leave
// registers.
//
// Forward: a block of 4 warps takes 128 query rows, two 16-row tiles per
// warp, so each fragment of K or V read from shared memory feeds two mma;
// it walks key tiles (64 keys at head dim 64, 32 at 128, so that its
// accumulators fit in registers without spilling), loading the next K tile
// and the current V tile with cp.async while it computes (FlashAttention-2
// measured these 4-warp shapes faster than 8 warps of 16 rows each).
// Backward: delta = rowsum(dO * O) first; then one kernel per 64 keys (4
// warps of 16) accumulates dK and dV over every query row of the kv head's
// group, and one kernel per 128 query rows (laid out as in the forward,
// walking 32-key tiles) accumulates dQ, so no two blocks write the same
// gradient and the result is deterministic; both double-buffer the tiles
// they walk. With determinism off the dK/dV kernel also adds dS K into an
// f32 dQ with atomics (FlashAttention-2's five products, no dQ kernel).
// attention.cu launches them.
// Shared tiles have rows of D + 8 elements: the 16-byte shift per row puts
// the eight rows an ldmatrix reads in distinct banks.
#pragma once

#include "../core/philox.h"
#include "cuda.cuh"

namespace nb_flash {

constexpr int WARPS = 4; // per block, in every kernel
// The forward and the dQ pass: blocks of QUERY_BLOCK query rows, WARP_TILES
// tiles of 16 per warp, walking tiles of as many keys as keep the
// accumulators within 255 registers (the dQ pass holds two score tiles).
constexpr int WARP_TILES = 2;
constexpr int QUERY_BLOCK = WARPS * WARP_TILES * 16;
template <int D> constexpr int FORWARD_KEYS = D == 64 ? 64 : 32;
constexpr int DQ_KEYS = 32;
// The dK/dV pass: blocks of KEY_BLOCK keys, 16 per warp, walking tiles of
// QUERY_TILE query rows (32 at head dim 128 keeps its dK and dV
// accumulators and two score tiles within 255 registers).
constexpr int KEY_BLOCK = WARPS * 16;
template <int D> constexpr int QUERY_TILE = D == 128 ? 32 : 64;

struct attention_params {
    const void *q, *k, *v, *mask, *dout, *o;
    void *out, *dq, *dk, *dv;
    float *lse, *delta;
    float *dq_accum; // the five-product backward's f32 dQ [bh, sq, D], zeroed before
    int64_t mask_stride[4];
    int heads, kv_heads, sq, sk;
    float scale;
    double dropout; // as the CPU draws: the same keep threshold to the last bit
    bool causal;
    uint64_t seed, offset;
};

__device__ __forceinline__ int64_t kv_head_of(const attention_params &p, int64_t bh) {
    return (bh / p.heads) * p.kv_heads + (bh % p.heads) / (p.heads / p.kv_heads);
}

// One past the last key that query rows up to i see (causal: bottom-right).
__device__ __forceinline__ int key_end(const attention_params &p, int i) {
    if (!p.causal) return p.sk;
    int end = i + p.sk - p.sq + 1;
    return end < 0 ? 0 : end < p.sk ? end : p.sk;
}

// ---- PTX wrappers (sm_80 and up; tests/attention_emulator.h runs the
// same instructions on the CPU under NB_WARP_EMULATOR) ----

__device__ __forceinline__ uint32_t shared_address(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

// 16 bytes from global to shared, or zeros when bytes is 0.
__device__ __forceinline__ void copy16_async(void *dst, const void *src, int bytes) {
#if defined(NB_WARP_EMULATOR)
    nb_emu_copy16_async(dst, src, bytes);
#elif __CUDA_ARCH__ >= 800
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(dst)),
                 "l"(src), "r"(bytes));
#endif
}

__device__ __forceinline__ void commit_async() {
#if defined(NB_WARP_EMULATOR)
    nb_emu_commit_async();
#elif __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}

// Waits until at most pending of the committed groups are in flight.
template <int pending> __device__ __forceinline__ void wait_async() {
#if defined(NB_WARP_EMULATOR)
    nb_emu_wait_async(pending);
#elif __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" ::"n"(pending) : "memory");
#endif
}

template <bool transpose>
__device__ __forceinline__ void load_matrices(uint32_t (&r)[4], const void *row_address) {
#if defined(NB_WARP_EMULATOR)
    nb_emu_ldmatrix(r, row_address, transpose);
#elif __CUDA_ARCH__ >= 800
    if constexpr (transpose)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(shared_address(row_address)));
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(shared_address(row_address)));
#endif
}

// c += a b for a 16x16 A fragment and a 16x8 B fragment (b0, b1).
template <typename T>
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(NB_WARP_EMULATOR)
    nb_emu_mma<T>(c, a, b0, b1);
#elif __CUDA_ARCH__ >= 800
    if constexpr (std::is_same<T, __half>::value)
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                     "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    else
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                     "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// Two floats as the T pair of one 32-bit register, lo in the low half.
template <typename T> __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    uint32_t bits;
    if constexpr (std::is_same<T, __half>::value) {
        __half2 pair = __floats2half2_rn(lo, hi);
        memcpy(&bits, &pair, 4);
    } else {
        __nv_bfloat162 pair = __floats2bfloat162_rn(lo, hi);
        memcpy(&bits, &pair, 4);
    }
    return bits;
}

template <typename T> __device__ __forceinline__ void store_pair(T *at, float lo, float hi) {
    *reinterpret_cast<uint32_t *>(at) = pack<T>(lo, hi);
}

// ---- tiles ----

template <int D> constexpr int pitch = D + 8;

// Starts copying rows first .. first + ROWS of src [rows, D] into a shared
// tile; rows at or past limit become zeros.
template <typename T, int D, int ROWS>
__device__ __forceinline__ void load_tile(T *tile, const T *src, int first, int limit) {
    constexpr int chunks = D / 8; // 16 bytes each
    for (int c = threadIdx.x; c < ROWS * chunks; c += blockDim.x) {
        int r = c / chunks, col = c % chunks * 8;
        bool inside = first + r < limit;
        copy16_async(tile + r * pitch<D> + col, src + (int64_t)(inside ? first + r : 0) * D + col,
                     inside ? 16 : 0);
    }
}

// c = a b^T: M tiles of 16 rows of a (consecutive, from a) against N rows
// of b, both shared tiles with D columns. Each B fragment serves the M tiles.
template <typename T, int D, int N, int M>
__device__ __forceinline__ void product_abt(float (&c)[M][N / 8][4], const T *a, const T *b) {
    int lane = threadIdx.x % 32;
#pragma unroll
    for (int mt = 0; mt < M; mt++)
#pragma unroll
        for (int nt = 0; nt < N / 8; nt++) c[mt][nt][0] = c[mt][nt][1] = c[mt][nt][2] = c[mt][nt][3] = 0;
#pragma unroll
    for (int ks = 0; ks < D / 16; ks++) {
        uint32_t af[M][4];
#pragma unroll
        for (int mt = 0; mt < M; mt++)
            load_matrices<false>(af[mt], a + (mt * 16 + lane % 16) * pitch<D> + ks * 16 + lane / 16 * 8);
#pragma unroll
        for (int nt = 0; nt < N / 8; nt += 2) {
            uint32_t bf[4];
            load_matrices<false>(bf, b + (nt * 8 + lane / 16 * 8 + lane % 8) * pitch<D> + ks * 16 +
                                         lane / 8 % 2 * 8);
#pragma unroll
            for (int mt = 0; mt < M; mt++) {
                mma<T>(c[mt][nt], af[mt], bf[0], bf[1]);
                mma<T>(c[mt][nt + 1], af[mt], bf[2], bf[3]);
            }
        }
    }
}

// c += a b: M tiles of 16 x K fragments (from registers) times K rows of
// the shared tile b with D columns (rows P elements apart: a tile's pitch,
// or a wider one's when b is a column slice of it).
template <typename T, int K, int D, int M, int P = pitch<D>>
__device__ __forceinline__ void product_ab(float (&c)[M][D / 8][4], const uint32_t (&a)[M][K / 16][4],
                                           const T *b) {
    int lane = threadIdx.x % 32;
#pragma unroll
    for (int kk = 0; kk < K / 16; kk++)
#pragma unroll
        for (int dt = 0; dt < D / 8; dt += 2) {
            uint32_t bf[4];
            load_matrices<true>(bf, b + (kk * 16 + lane / 8 % 2 * 8 + lane % 8) * P +
                                        (dt + lane / 16) * 8);
#pragma unroll
            for (int mt = 0; mt < M; mt++) {
                mma<T>(c[mt][dt], a[mt][kk], bf[0], bf[1]);
                mma<T>(c[mt][dt + 1], a[mt][kk], bf[2], bf[3]);
            }
        }
}

// The one-tile forms the backward uses: a warp's 16 rows.
template <typename T, int D, int N>
__device__ __forceinline__ void product_abt(float (&c)[N / 8][4], const T *a, const T *b) {
    product_abt<T, D, N, 1>(reinterpret_cast<float(&)[1][N / 8][4]>(c), a, b);
}

template <typename T, int K, int D, int P = pitch<D>>
__device__ __forceinline__ void product_ab(float (&c)[D / 8][4], const uint32_t (&a)[K / 16][4],
                                           const T *b) {
    product_ab<T, K, D, 1, P>(reinterpret_cast<float(&)[1][D / 8][4]>(c),
                              reinterpret_cast<const uint32_t(&)[1][K / 16][4]>(a), b);
}

// Accumulators of a 16 x N tile as the A fragments of a product over N.
template <typename T, int N>
__device__ __forceinline__ void to_fragments(const float (&c)[N / 8][4], uint32_t (&a)[N / 16][4]) {
#pragma unroll
    for (int kk = 0; kk < N / 16; kk++) {
        a[kk][0] = pack<T>(c[2 * kk][0], c[2 * kk][1]);
        a[kk][1] = pack<T>(c[2 * kk][2], c[2 * kk][3]);
        a[kk][2] = pack<T>(c[2 * kk + 1][0], c[2 * kk + 1][1]);
        a[kk][3] = pack<T>(c[2 * kk + 1][2], c[2 * kk + 1][3]);
    }
}

// Accumulator e of slice nt: its row within the warp's 16 and its column.
__device__ __forceinline__ int fragment_row(int e) { return threadIdx.x % 32 / 4 + 8 * (e / 2); }
__device__ __forceinline__ int fragment_col(int nt, int e) { return nt * 8 + threadIdx.x % 4 * 2 + e % 2; }

// The score of query i and key j of head bh from the raw product q.k:
// scaled, the mask added, -inf where causality or the bounds hide the key.
template <typename T>
__device__ __forceinline__ float biased_score(const attention_params &p, int64_t bh, int i, int j,
                                              float raw) {
    if (i >= p.sq || j >= p.sk || (p.causal && j > i + p.sk - p.sq)) return -INFINITY;
    float x = raw * p.scale;
    if (p.mask) {
        int64_t at = bh / p.heads * p.mask_stride[0] + bh % p.heads * p.mask_stride[1] +
                     i * p.mask_stride[2] + j * p.mask_stride[3];
        x += nb_to_compute<float>(((const T *)p.mask)[at]);
    }
    return x;
}

// Whether the scores of queries i0 .. i0 + rows - 1 against keys j0 ..
// j0 + keys - 1 need biased_score's checks (a mask, a tile past either end,
// or keys past the causal diagonal of query i0); if not, a score is the raw
// product times the scale.
__device__ __forceinline__ bool tile_needs_checks(const attention_params &p, int i0, int rows, int j0,
                                                  int keys) {
    return p.mask || i0 + rows > p.sq || j0 + keys > p.sk ||
           (p.causal && j0 + keys - 1 > i0 + p.sk - p.sq);
}

// Dropout's factor for probability (i, j) of head bh: keep / (1 - p), from
// the draw nb_bernoulli makes for that element of [B, H, Sq, Sk].
__device__ __forceinline__ float dropout_factor(const attention_params &p, int64_t bh, int i, int j) {
    uint64_t index = (uint64_t)((bh * p.sq + i) * p.sk + j);
    bool keep = nb_philox_draw(NB_OP_BERNOULLI, p.seed, p.offset, index, 1 - p.dropout, 0) != 0;
    return keep ? (float)(1 / (1 - p.dropout)) : 0;
}

// The probability exp(x - lse), 0 where the score is hidden (also when the
// whole row is, lse = -inf).
__device__ __forceinline__ float probability(float x, float lse) {
    return x == -INFINITY ? 0 : __expf(x - lse);
}

// Shared memory of each kernel: its tiles (and the dK/dV pass's row
// statistics).
template <typename T, int D>
constexpr size_t forward_shared = sizeof(T) * (QUERY_BLOCK + 2 * FORWARD_KEYS<D>) * pitch<D>;
template <typename T, int D>
constexpr size_t dq_shared = sizeof(T) * (2 * QUERY_BLOCK + 4 * DQ_KEYS) * pitch<D>;
template <typename T, int D>
constexpr size_t dkdv_shared = sizeof(T) * (2 * KEY_BLOCK + 4 * QUERY_TILE<D>) * pitch<D> +
                               sizeof(float) * 4 * QUERY_TILE<D>;
// The five-product pass also keeps the query tile's dS, queries by keys.
constexpr int DS_PITCH = KEY_BLOCK + 8;
template <typename T, int D>
constexpr size_t fused_dkdv_shared = dkdv_shared<T, D> + sizeof(T) * QUERY_TILE<D> * DS_PITCH;

// ---- forward ----

// The forward works in base 2: scores are scaled by log2(e) so that each
// probability is one exp2 (FlashAttention-2's folding).
constexpr float LOG2E = 1.4426950408889634f, LN2 = 0.6931471805599453f;

// The online softmax (Milakov and Gimelshein, 2018) of a warp's 16 x N
// scores (base 2) for the thread's two rows: m and l take in the tile, o is
// rescaled by 2^(m_old - m_new) and s becomes 2^(s - m_new).
template <int D, int N>
__device__ __forceinline__ void online_softmax(float (&s)[N / 8][4], float (&o)[D / 8][4],
                                               float (&m)[2], float (&l)[2]) {
#pragma unroll
    for (int half = 0; half < 2; half++) {
        float top = m[half];
#pragma unroll
        for (int nt = 0; nt < N / 8; nt++)
            top = fmaxf(top, fmaxf(s[nt][2 * half], s[nt][2 * half + 1]));
        top = fmaxf(top, __shfl_xor_sync(0xffffffffu, top, 1));
        top = fmaxf(top, __shfl_xor_sync(0xffffffffu, top, 2));
        float base = top == -INFINITY ? 0 : top; // no key seen yet: every exp is 0
        float correction = exp2f(m[half] - base), sum = 0;
        m[half] = top;
#pragma unroll
        for (int nt = 0; nt < N / 8; nt++)
#pragma unroll
            for (int e = 2 * half; e < 2 * half + 2; e++) {
                s[nt][e] = exp2f(s[nt][e] - base);
                sum += s[nt][e];
            }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        l[half] = l[half] * correction + sum;
#pragma unroll
        for (int dt = 0; dt < D / 8; dt++) {
            o[dt][2 * half] *= correction;
            o[dt][2 * half + 1] *= correction;
        }
    }
}

// Stores a warp's 16 x D accumulators into rows first.. of dst [rows, D],
// up to limit, the thread's upper row times factor[0] and its lower row
// (8 further) times factor[1].
template <typename T, int D>
__device__ __forceinline__ void store_rows(T *dst, const float (&c)[D / 8][4], int first, int limit,
                                           const float (&factor)[2]) {
#pragma unroll
    for (int half = 0; half < 2; half++) {
        int r = first + fragment_row(2 * half);
        if (r >= limit) continue;
#pragma unroll
        for (int dt = 0; dt < D / 8; dt++)
            store_pair(dst + (int64_t)r * D + fragment_col(dt, 0), c[dt][2 * half] * factor[half],
                       c[dt][2 * half + 1] * factor[half]);
    }
}

// Writes a warp tile's output rows first.. (o / l) and their lse.
template <typename T, int D>
__device__ __forceinline__ void store_output(const attention_params &p, int64_t bh, int first,
                                             const float (&o)[D / 8][4], const float (&m)[2],
                                             const float (&l)[2]) {
    const float inverse[2] = {l[0] > 0 ? 1 / l[0] : 0, l[1] > 0 ? 1 / l[1] : 0};
    store_rows<T, D>((T *)p.out + bh * p.sq * D, o, first, p.sq, inverse);
#pragma unroll
    for (int half = 0; half < 2; half++) {
        int i = first + fragment_row(2 * half);
        if (i < p.sq && threadIdx.x % 4 == 0)
            p.lse[bh * p.sq + i] = l[half] > 0 ? m[half] * LN2 + logf(l[half]) : -INFINITY;
    }
}

template <typename T, int D, bool DROPOUT>
__global__ void __launch_bounds__(WARPS * 32, 2)
    attention_forward(attention_params p, int query_tiles) {
    constexpr int keys = FORWARD_KEYS<D>, tiles = WARP_TILES;
    extern __shared__ uint4 shared[];
    T *sq = (T *)shared, *sk = sq + QUERY_BLOCK * pitch<D>, *sv = sk + keys * pitch<D>;
    int64_t bh = blockIdx.x / query_tiles, kv = kv_head_of(p, bh);
    // the longest causal tiles first: they finish last
    int i0 = (query_tiles - 1 - (int)(blockIdx.x % query_tiles)) * QUERY_BLOCK;
    int warp_row = threadIdx.x / 32 * tiles * 16; // the warp's first row in the block's tile
    const T *q = (const T *)p.q + bh * p.sq * D, *k = (const T *)p.k + kv * p.sk * D;
    const T *v = (const T *)p.v + kv * p.sk * D;
    int end = key_end(p, min(i0 + QUERY_BLOCK, p.sq) - 1);
    float scale = p.scale * LOG2E;

    load_tile<T, D, QUERY_BLOCK>(sq, q, i0, p.sq);
    commit_async();
    if (end > 0) load_tile<T, D, keys>(sk, k, 0, p.sk);
    commit_async();
    float o[tiles][D / 8][4] = {}, m[tiles][2], l[tiles][2] = {};
#pragma unroll
    for (int mt = 0; mt < tiles; mt++) m[mt][0] = m[mt][1] = -INFINITY;
    for (int j0 = 0; j0 < end; j0 += keys) {
        load_tile<T, D, keys>(sv, v, j0, p.sk);
        commit_async();
        wait_async<1>(); // q and this K tile
        __syncthreads();
        float s[tiles][keys / 8][4];
        product_abt<T, D, keys>(s, sq + warp_row * pitch<D>, sk);
        __syncthreads(); // every warp is done with the K tile
        if (j0 + keys < end) load_tile<T, D, keys>(sk, k, j0 + keys, p.sk);
        commit_async();
        bool checked = tile_needs_checks(p, i0, QUERY_BLOCK, j0, keys);
        uint32_t probs[tiles][keys / 16][4];
#pragma unroll
        for (int mt = 0; mt < tiles; mt++) {
            int first = i0 + warp_row + mt * 16;
#pragma unroll
            for (int nt = 0; nt < keys / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    s[mt][nt][e] = checked ? biased_score<T>(p, bh, first + fragment_row(e),
                                                          j0 + fragment_col(nt, e), s[mt][nt][e]) * LOG2E
                                        : s[mt][nt][e] * scale;
            online_softmax<D, keys>(s[mt], o[mt], m[mt], l[mt]);
            if (DROPOUT)
#pragma unroll
                for (int nt = 0; nt < keys / 8; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        int i = first + fragment_row(e), j = j0 + fragment_col(nt, e);
                        if (i < p.sq && j < p.sk) s[mt][nt][e] *= dropout_factor(p, bh, i, j);
                    }
            to_fragments<T, keys>(s[mt], probs[mt]);
        }
        wait_async<1>(); // this V tile
        __syncthreads();
        product_ab<T, keys, D>(o, probs, sv);
        __syncthreads(); // every warp is done with the V tile
    }
    wait_async<0>();
#pragma unroll
    for (int mt = 0; mt < tiles; mt++)
        store_output<T, D>(p, bh, i0 + warp_row + mt * 16, o[mt], m[mt], l[mt]);
}

// ---- backward ----

// delta_i = dO_i . O_i, one warp per row.
template <typename T, int D>
__global__ void attention_row_deltas(attention_params p, int64_t row_count) {
    int64_t row = blockIdx.x * (int64_t)(blockDim.x / 32) + threadIdx.x / 32;
    if (row >= row_count) return;
    const T *dout = (const T *)p.dout + row * D, *o = (const T *)p.o + row * D;
    float sum = 0;
    for (int e = threadIdx.x % 32; e < D; e += 32)
        sum += nb_to_compute<float>(dout[e]) * nb_to_compute<float>(o[e]);
    for (int width = 16; width > 0; width /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, width);
    if (threadIdx.x % 32 == 0) p.delta[row] = sum;
}

// dQ for QUERY_BLOCK query rows of head bh: dS = P (dP - delta) against
// every key tile they see, dQ = scale dS K. The K and V tiles are
// double-buffered: the next pair loads while this one is used.
template <typename T, int D, bool DROPOUT>
__global__ void __launch_bounds__(WARPS * 32, 2)
    attention_backward_dq(attention_params p, int query_tiles) {
    constexpr int keys = DQ_KEYS, tiles = WARP_TILES, tile = keys * pitch<D>;
    extern __shared__ uint4 shared[];
    T *sq = (T *)shared, *sdo = sq + QUERY_BLOCK * pitch<D>, *skv = sdo + QUERY_BLOCK * pitch<D>; // [2][K, V]
    int64_t bh = blockIdx.x / query_tiles, kv = kv_head_of(p, bh);
    int i0 = (query_tiles - 1 - (int)(blockIdx.x % query_tiles)) * QUERY_BLOCK;
    int warp_row = threadIdx.x / 32 * tiles * 16; // the warp's first row in the block's tile
    const T *k = (const T *)p.k + kv * p.sk * D, *v = (const T *)p.v + kv * p.sk * D;
    int end = key_end(p, min(i0 + QUERY_BLOCK, p.sq) - 1);
    load_tile<T, D, QUERY_BLOCK>(sq, (const T *)p.q + bh * p.sq * D, i0, p.sq);
    load_tile<T, D, QUERY_BLOCK>(sdo, (const T *)p.dout + bh * p.sq * D, i0, p.sq);
    if (end > 0) {
        load_tile<T, D, keys>(skv, k, 0, p.sk);
        load_tile<T, D, keys>(skv + tile, v, 0, p.sk);
    }
    commit_async();
    float lse[tiles][2], delta[tiles][2];
#pragma unroll
    for (int mt = 0; mt < tiles; mt++)
#pragma unroll
        for (int half = 0; half < 2; half++) {
            int i = i0 + warp_row + mt * 16 + fragment_row(2 * half);
            lse[mt][half] = i < p.sq ? p.lse[bh * p.sq + i] : 0;
            delta[mt][half] = i < p.sq ? p.delta[bh * p.sq + i] : 0;
        }
    float dq[tiles][D / 8][4] = {};
    for (int j0 = 0, buffer = 0; j0 < end; j0 += keys, buffer ^= 1) {
        T *sk = skv + 2 * buffer * tile, *sv = sk + tile, *next = skv + 2 * (buffer ^ 1) * tile;
        if (j0 + keys < end) { // the other buffer was last read before the previous barrier
            load_tile<T, D, keys>(next, k, j0 + keys, p.sk);
            load_tile<T, D, keys>(next + tile, v, j0 + keys, p.sk);
        }
        commit_async();
        wait_async<1>(); // this pair (and q, dO)
        __syncthreads();
        bool checked = tile_needs_checks(p, i0, QUERY_BLOCK, j0, keys);
        float s[tiles][keys / 8][4], dp[tiles][keys / 8][4];
        product_abt<T, D, keys>(s, sq + warp_row * pitch<D>, sk);
        product_abt<T, D, keys>(dp, sdo + warp_row * pitch<D>, sv);
        uint32_t ds[tiles][keys / 16][4];
#pragma unroll
        for (int mt = 0; mt < tiles; mt++) {
#pragma unroll
            for (int nt = 0; nt < keys / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int i = i0 + warp_row + mt * 16 + fragment_row(e), j = j0 + fragment_col(nt, e);
                    float x = checked ? biased_score<T>(p, bh, i, j, s[mt][nt][e]) : s[mt][nt][e] * p.scale;
                    float prob = probability(x, lse[mt][e / 2]);
                    float grad = dp[mt][nt][e];
                    if (DROPOUT && prob != 0) grad *= dropout_factor(p, bh, i, j);
                    s[mt][nt][e] = prob * (grad - delta[mt][e / 2]);
                }
            to_fragments<T, keys>(s[mt], ds[mt]);
        }
        product_ab<T, keys, D>(dq, ds, sk);
        __syncthreads(); // every warp is done with this pair
    }
    wait_async<0>(); // q and dO when no key tile was read
#pragma unroll
    for (int mt = 0; mt < tiles; mt++)
        store_rows<T, D>((T *)p.dq + bh * p.sq * D, dq[mt], i0 + warp_row + mt * 16, p.sq,
                         {p.scale, p.scale});
}

// The query tile at step t of the dK/dV pass (its query head, the first
// row and the rows per head) into one of the pass's buffers: q and dO by
// cp.async, lse and delta by plain stores.
template <typename T, int D>
__device__ __forceinline__ void stage_query_tile(const attention_params &p, int64_t bh, int i0,
                                                 T *sq, T *sdo, float *slse, float *sdelta) {
    load_tile<T, D, QUERY_TILE<D>>(sq, (const T *)p.q + bh * p.sq * D, i0, p.sq);
    load_tile<T, D, QUERY_TILE<D>>(sdo, (const T *)p.dout + bh * p.sq * D, i0, p.sq);
    for (int r = threadIdx.x; r < QUERY_TILE<D>; r += blockDim.x) {
        bool inside = i0 + r < p.sq;
        slse[r] = inside ? p.lse[bh * p.sq + i0 + r] : 0;
        sdelta[r] = inside ? p.delta[bh * p.sq + i0 + r] : 0;
    }
}

// The five-product backward's dQ share of one query tile (FlashAttention-2,
// Algorithm 2): dQ += dS K for the block's 64 keys, dS (queries by keys) in
// shared memory. Each warp takes 16 query rows and a slice of the columns,
// 32 at a time, and adds them into the f32 p.dq_accum with atomics
// (red.global.add: the order, so the last bits, depend on timing).
template <typename T, int D>
__device__ __forceinline__ void add_query_tile_dq(const attention_params &p, int64_t bh, int i0,
                                                  const T *sds, const T *sk) {
    constexpr int rows = QUERY_TILE<D>, row_groups = rows / 16, columns = D / (WARPS / row_groups);
    constexpr int chunk = 32;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int row0 = warp % row_groups * 16, col0 = warp / row_groups * columns;
    uint32_t a[KEY_BLOCK / 16][4];
#pragma unroll
    for (int kk = 0; kk < KEY_BLOCK / 16; kk++)
        load_matrices<false>(a[kk], sds + (row0 + lane % 16) * DS_PITCH + kk * 16 + lane / 16 * 8);
#pragma unroll 1
    for (int c0 = col0; c0 < col0 + columns; c0 += chunk) {
        float dq[chunk / 8][4] = {};
        product_ab<T, KEY_BLOCK, chunk, pitch<D>>(dq, a, sk + c0);
#pragma unroll
        for (int dt = 0; dt < chunk / 8; dt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int i = i0 + row0 + fragment_row(e);
                if (i < p.sq) atomicAdd(p.dq_accum + (bh * p.sq + i) * D + c0 + fragment_col(dt, e), dq[dt][e]);
            }
    }
}

// dK and dV for 64 keys of one kv head, over every query row of its group:
// dV = (P z)^T dO and dK = scale dS^T Q, with z dropout's factor. The query
// tiles are double-buffered: the next loads while this one is used. With
// FUSED_DQ, each tile's dS also goes through shared memory into dQ
// (add_query_tile_dq), so the dQ pass and its two recomputed products are
// not needed: five products in all instead of seven.
template <typename T, int D, bool DROPOUT, bool FUSED_DQ>
__global__ void __launch_bounds__(WARPS * 32)
    attention_backward_dkdv(attention_params p, int key_tiles) {
    constexpr int keys = KEY_BLOCK, rows = QUERY_TILE<D>, tile = rows * pitch<D>;
    extern __shared__ uint4 shared[];
    T *sk = (T *)shared, *sv = sk + keys * pitch<D>, *sqdo = sv + keys * pitch<D>; // [2][q, dO]
    float *stats = (float *)(sqdo + 4 * tile);                                     // [2][lse, delta]
    T *sds = (T *)(stats + 4 * rows);                                              // FUSED_DQ: [rows, keys]
    int64_t head = blockIdx.x / key_tiles; // b Hkv + kv
    int j0 = (int)(blockIdx.x % key_tiles) * keys, warp = threadIdx.x / 32;
    int group = p.heads / p.kv_heads;
    int64_t first_head = head / p.kv_heads * p.heads + head % p.kv_heads * group;
    int first = p.causal ? max(0, j0 - (p.sk - p.sq)) : 0; // the first query that sees key j0
    int per_head = first < p.sq ? (p.sq - first + rows - 1) / rows : 0, steps = group * per_head;
    load_tile<T, D, keys>(sk, (const T *)p.k + head * p.sk * D, j0, p.sk);
    load_tile<T, D, keys>(sv, (const T *)p.v + head * p.sk * D, j0, p.sk);
    if (steps > 0) stage_query_tile<T, D>(p, first_head, first, sqdo, sqdo + tile, stats, stats + rows);
    commit_async();
    float dk[D / 8][4] = {}, dv[D / 8][4] = {};
    for (int t = 0; t < steps; t++) {
        int buffer = t & 1, next = t + 1;
        if (next < steps) // the other buffer was last read before the previous barrier
            stage_query_tile<T, D>(p, first_head + next / per_head, first + next % per_head * rows,
                                   sqdo + 2 * (buffer ^ 1) * tile, sqdo + (2 * (buffer ^ 1) + 1) * tile,
                                   stats + 2 * (buffer ^ 1) * rows, stats + (2 * (buffer ^ 1) + 1) * rows);
        commit_async();
        wait_async<1>(); // this tile (and K, V)
        __syncthreads();
        int64_t bh = first_head + t / per_head;
        int i0 = first + t % per_head * rows;
        const T *sq = sqdo + 2 * buffer * tile, *sdo = sq + tile;
        const float *slse = stats + 2 * buffer * rows, *sdelta = slse + rows;
        bool checked = tile_needs_checks(p, i0, rows, j0, keys);
        float s[rows / 8][4], dp[rows / 8][4]; // transposed: keys by queries
        product_abt<T, D, rows>(s, sk + warp * 16 * pitch<D>, sq);
        product_abt<T, D, rows>(dp, sv + warp * 16 * pitch<D>, sdo);
        uint32_t frag[rows / 16][4];
#pragma unroll
        for (int nt = 0; nt < rows / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int c = fragment_col(nt, e), i = i0 + c, j = j0 + warp * 16 + fragment_row(e);
                float x = checked ? biased_score<T>(p, bh, i, j, s[nt][e]) : s[nt][e] * p.scale;
                float prob = probability(x, slse[c]);
                float factor = DROPOUT && prob != 0 ? dropout_factor(p, bh, i, j) : 1;
                s[nt][e] = prob * factor;
                dp[nt][e] = prob * (dp[nt][e] * factor - sdelta[c]);
            }
        to_fragments<T, rows>(s, frag);
        product_ab<T, rows, D>(dv, frag, sdo);
        to_fragments<T, rows>(dp, frag);
        product_ab<T, rows, D>(dk, frag, sq);
        if constexpr (FUSED_DQ) {
#pragma unroll
            for (int nt = 0; nt < rows / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    sds[fragment_col(nt, e) * DS_PITCH + warp * 16 + fragment_row(e)] = nb_to_storage<T>(dp[nt][e]);
            __syncthreads(); // every warp's keys are in
            add_query_tile_dq<T, D>(p, bh, i0, sds, sk);
        }
        __syncthreads(); // every warp is done with this tile
    }
    wait_async<0>(); // K and V when no query sees these keys
    store_rows<T, D>((T *)p.dk + head * p.sk * D, dk, j0 + warp * 16, p.sk, {p.scale, p.scale});
    store_rows<T, D>((T *)p.dv + head * p.sk * D, dv, j0 + warp * 16, p.sk, {1, 1});
}

// dQ = scale dq_accum in T, a thread per 8 values (D is a multiple of 8).
template <typename T>
__global__ void attention_dq_from_accum(attention_params p, int64_t count) {
    int64_t i = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) * 8;
    if (i >= count) return;
    nb_pack<T, 8> pack;
#pragma unroll
    for (int e = 0; e < 8; e++) pack.v[e] = nb_to_storage<T>(p.dq_accum[i + e] * p.scale);
    *(nb_pack<T, 8> *)((T *)p.dq + i) = pack;
}

} // namespace nb_flash
